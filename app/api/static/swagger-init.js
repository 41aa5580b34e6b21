// Starts Swagger UI with FastAPI's default parameters. It is a file rather than an inline
// script so that the page's Content-Security-Policy can forbid inline scripts; the page
// passes the OpenAPI document's URL in a data attribute.
"use strict";
(function () {
  var root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.dataset.openapiUrl,
    dom_id: "#swagger-ui",
    layout: "BaseLayout",
    deepLinking: true,
    showExtensions: true,
    showCommonExtensions: true,
    // No badge fetched from the public validator: the docs work offline.
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],
  });
})();
