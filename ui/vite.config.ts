/// <reference types="vitest/config" />
import { defineConfig } from "vite";

const api = process.env.SEXTANT_API ?? "http://127.0.0.1:9595";

// Preact's automatic JSX runtime through esbuild; no framework plugin needed.
export default defineConfig({
  esbuild: { jsx: "automatic", jsxImportSource: "preact" },
  build: { outDir: "dist", sourcemap: false, chunkSizeWarningLimit: 1500 },
  // `npm run dev` (and `vite preview`) proxy the API to a running sextant (SEXTANT_API to change).
  server: { proxy: { "/api": api, "/-": api } },
  preview: { proxy: { "/api": api, "/-": api } },
  test: { environment: "node", include: ["src/**/*.test.ts"] },
});
