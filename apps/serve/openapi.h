#pragma once
// GET /v1/openapi.json: the OpenAPI 3 description of rnnkit-serve's routes. The fixed routes are
// described here; each served app describes its own (ServedApp::openapi) with these helpers.
#include <string>
#include <vector>

#include <rnnkit/train/json.h>

#include "serve.h"

namespace rnnkit::serve::openapi {

using train::Json;

/// The whole description: the fixed routes, then every served app's.
Json describe(const ServeOptions& o);

/// A "texts" array within the server's limits (--max-texts, --max-text-bytes).
Json texts(const ServeOptions& o);
/// A required JSON request body: an object of `properties`, nothing else, `required` present.
Json body(const Json& properties, const std::vector<std::string>& required);
/// The path item of POST /v1/models/{name}/ACTION: its summary, body and 200's description,
/// with the errors every action may answer.
Json action(const std::string& summary, const Json& request, const std::string& what);

}  // namespace rnnkit::serve::openapi
