// Swagger UI for the spec this server serves, as written (with its components and servers).
// An external file, not an inline script, so the page's CSP can stay "script-src 'self'".
window.ui = SwaggerUIBundle({
  url: "../openapi.json",
  dom_id: "#swagger-ui",
  layout: "BaseLayout",
  deepLinking: true,
  // The token pasted into Authorize survives a reload.
  persistAuthorization: true,
  displayRequestDuration: true,
  // Never send the spec's address to validator.swagger.io for a badge.
  validatorUrl: null,
});
