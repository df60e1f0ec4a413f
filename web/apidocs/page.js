// Renders the OpenAPI document named by #swagger-ui's data-spec with the
// vendored Swagger UI. A file of its own: the page's Content-Security-Policy
// allows no inline script.
window.addEventListener("DOMContentLoaded", function () {
  var root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.getAttribute("data-spec"),
    domNode: root,
    docExpansion: "list", // every operation visible, none expanded
    defaultModelsExpandDepth: 0,
    deepLinking: true,
    displayOperationId: false,
    tryItOutEnabled: false,
    // Nothing leaves the page: no online validator badge.
    validatorUrl: null,
  });
});
