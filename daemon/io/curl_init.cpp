// See curl_init.h.
#include "io/curl_init.h"

#include <curl/curl.h>

namespace nettally {

void curl_global_once() {
    // A function-local static: initialised once, and other threads wait for it.
    static const CURLcode done = curl_global_init(CURL_GLOBAL_DEFAULT);
    (void)done;
}

} // namespace nettally
