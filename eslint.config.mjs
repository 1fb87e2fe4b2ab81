// ESLint's and typescript-eslint's recommended rules over every TypeScript file (the stack, the
// apps, tests and benches); formatting is Prettier's (`npm run lint` runs both).
import eslint from "@eslint/js";
import tseslint from "typescript-eslint";

export default tseslint.config(
  { ignores: ["**/node_modules/", "**/dist/", "vendor/"] },
  eslint.configs.recommended,
  tseslint.configs.recommended,
);
