// Entry point: the navigation bar and the page table. Each page is a component in src/pages.
import { render } from "preact";
import { useRoute } from "./router";
import { DashboardsPage } from "./pages/Dashboards";
import { DashboardPage } from "./pages/Dashboard";
import { ImportPage } from "./pages/Import";
import { Explore } from "./pages/Explore";
import { Alerts } from "./pages/Alerts";
import { Rules } from "./pages/Rules";
import { Silences } from "./pages/Silences";
import { Notifications } from "./pages/Notifications";
import { Targets } from "./pages/Targets";
import { Status } from "./pages/Status";
import "./style.css";

interface PageDef {
  /** Route segment after "#/". */
  path: string;
  /** Title in the navigation bar; pages without one are reachable by link only. */
  nav?: string;
  render: (rest: string[], params: URLSearchParams) => preact.ComponentChild;
}

const pages: PageDef[] = [
  {
    path: "dashboards",
    nav: "Dashboards",
    render: (rest, params) =>
      rest[0] === "new" ? <DashboardPage key="new" uid="new" params={params} isNew /> : <DashboardsPage params={params} />,
  },
  { path: "d", render: (rest, params) => <DashboardPage key={rest[0]} uid={rest[0] ?? ""} params={params} /> },
  { path: "import", render: () => <ImportPage /> },
  { path: "explore", nav: "Explore", render: (_, params) => <Explore key={params.toString()} params={params} /> },
  { path: "alerts", nav: "Alerts", render: () => <Alerts /> },
  { path: "rules", nav: "Rules", render: () => <Rules /> },
  { path: "silences", nav: "Silences", render: (rest, params) => <Silences key={rest.join("/") + "?" + params.toString()} rest={rest} params={params} /> },
  { path: "notifications", nav: "Notifications", render: () => <Notifications /> },
  { path: "targets", nav: "Targets", render: () => <Targets /> },
  { path: "status", nav: "Status", render: () => <Status /> },
];

function App() {
  const route = useRoute();
  const page = pages.find((p) => p.path === route.page) ?? pages[0];
  return (
    <>
      <header class="topbar">
        <a class="brand" href="#/dashboards">Sextant</a>
        <nav>
          {pages.filter((p) => p.nav).map((p) => (
            <a href={`#/${p.path}`} class={p === page ? "active" : ""}>{p.nav}</a>
          ))}
        </nav>
      </header>
      <main>{page.render(route.rest, route.params)}</main>
    </>
  );
}

render(<App />, document.getElementById("app")!);
