// Starts Swagger UI on /api/docs. A file rather than an inline script, so the page keeps the panel's CSP
// (scripts from this origin only). Requests made with "Try it out" carry the token typed into Authorize.
window.addEventListener("load", function () {
  window.ui = SwaggerUIBundle({
    url: document.body.dataset.openapiUrl,
    dom_id: "#swagger-ui",
    deepLinking: true,
    persistAuthorization: false,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
  });
});
