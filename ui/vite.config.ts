/// <reference types="vitest/config" />
import { defineConfig } from "vite";

// Preact's automatic JSX runtime through esbuild; no framework plugin needed.
export default defineConfig({
  esbuild: { jsx: "automatic", jsxImportSource: "preact" },
  build: { outDir: "dist", sourcemap: false, chunkSizeWarningLimit: 1500 },
  server: { proxy: { "/api": "http://127.0.0.1:9595", "/-": "http://127.0.0.1:9595" } },
  test: { environment: "node", include: ["src/**/*.test.ts"] },
});
