export function Placeholder({ title }: { title: string }) {
  return (
    <section class="page">
      <h1>{title}</h1>
      <p>This page is being built.</p>
    </section>
  );
}
