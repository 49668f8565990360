// D3 as an ES module. The page loads the vendored UMD build with a classic
// <script> before any module runs (modules are deferred), so the global exists here.
const d3 = globalThis.d3;
if (!d3) throw new Error("D3 is missing: the page must load vendor/d3-*.min.js before its modules.");
export default d3;
