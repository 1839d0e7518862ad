#include "openapi.h"

#include <rnnkit/version.h>

#include "served_model.h"

namespace rnnkit::serve::openapi {
namespace {

Json ok(const std::string& what, const std::string& type = "application/json") {
  return Json{{"description", what}, {"content", {{type, {{"schema", {{"type", "object"}}}}}}}};
}

Json error() {
  const Json schema{{"type", "object"}, {"properties", {{"error", {{"type", "string"}}}}}};
  return Json{{"description", "an error"},
              {"content", {{"application/json", {{"schema", schema}}}}}};
}

}  // namespace

Json texts(const ServeOptions& o) {
  return Json{{"type", "array"},
              {"items", {{"type", "string"}, {"maxLength", o.max_text_bytes}}},
              {"minItems", 1},
              {"maxItems", o.max_texts}};
}

Json body(const Json& properties, const std::vector<std::string>& required) {
  Json schema{{"type", "object"}, {"properties", properties}, {"additionalProperties", false}};
  if (!required.empty()) schema["required"] = required;
  return Json{{"required", true}, {"content", {{"application/json", {{"schema", schema}}}}}};
}

Json action(const std::string& summary, const Json& request, const std::string& what) {
  const Json name{
      {"name", "name"}, {"in", "path"}, {"required", true}, {"schema", {{"type", "string"}}}};
  const Json e = error();
  Json responses{{"200", ok(what)}, {"400", e}, {"401", e}, {"404", e}, {"413", e}, {"503", e}};
  return Json{{"post",
               {{"summary", summary},
                {"parameters", Json::array({name})},
                {"requestBody", request},
                {"responses", responses}}}};
}

Json describe(const ServeOptions& o) {
  Json paths;
  paths["/"] = {
      {"get", {{"summary", "the page"}, {"responses", {{"200", ok("HTML", "text/html")}}}}}};
  paths["/health"] = {
      {"get",
       {{"summary", "200 once every model is loaded; 503 while loading or draining"},
        {"responses", {{"200", ok("ready")}, {"503", ok("loading or draining")}}}}}};
  paths["/v1/models"] = {{"get",
                          {{"summary", "each model's card"},
                           {"responses", {{"200", ok("the cards")}, {"401", error()}}}}}};
  paths["/metrics"] = {{"get",
                        {{"summary", "Prometheus text format"},
                         {"responses", {{"200", ok("metrics", "text/plain")}}}}}};
  paths["/v1/openapi.json"] = {
      {"get", {{"summary", "this description"}, {"responses", {{"200", ok("OpenAPI 3")}}}}}};
  for (const auto& app : served_apps()) {
    const Json routes = app.openapi(o);  // items() of a temporary would outlive it
    for (const auto& [path, item] : routes.items()) paths[path] = item;
  }
  return {{"openapi", "3.0.3"},
          {"info", {{"title", "rnnkit-serve"}, {"version", RNNKIT_VERSION}}},
          {"paths", paths}};
}

}  // namespace rnnkit::serve::openapi
