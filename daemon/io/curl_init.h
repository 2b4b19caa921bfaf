// libcurl's process-wide initialisation, done once for every part of io/ that makes transfers
// (the uploader, the rule bundle pull), before the first easy or multi handle.
#pragma once

namespace nettally {

// curl_global_init(CURL_GLOBAL_DEFAULT) on the first call; later calls do nothing. Thread-safe.
void curl_global_once();

} // namespace nettally
