// ReDoc for the spec this server serves. The page is /redoc, so "openapi.json" is /openapi.json.
// Fonts: the system's own. ReDoc's defaults (Roboto, Montserrat) would need Google Fonts.
var systemFonts = 'system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", sans-serif';
Redoc.init(
  "openapi.json",
  {
    expandResponses: "200,201",
    pathInMiddlePanel: true,
    theme: {
      typography: {
        fontFamily: systemFonts,
        headings: { fontFamily: systemFonts },
        code: { fontFamily: 'ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace' },
      },
    },
  },
  document.getElementById("redoc"),
);
