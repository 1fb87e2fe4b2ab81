// ESLint's and typescript-eslint's recommended rules over every TypeScript file (the stack, the
// apps, the tests and the lab); formatting is Prettier's (`npm run lint` runs both).
import eslint from "@eslint/js";
import tseslint from "typescript-eslint";

export default tseslint.config(
  { ignores: ["**/node_modules/", "**/dist/", "lab/vendor/"] },
  eslint.configs.recommended,
  tseslint.configs.recommended,
);
