// libcurl, loaded at the first transfer instead of at start. nettallyd does not link libcurl: a
// daemon with no upload target and no rule bundle URL never maps it, nor the libraries it pulls
// in (TLS, SSH, LDAP, Kerberos, HTTP/2, ...: ~6 MiB of resident pages, most of nettallyd's idle
// RSS). The first transfer (io/upload, io/rules_fetch) calls curl_load(), which dlopen()s
// libcurl.so.4 -- the way systemd loads its optional libraries.
//
// The rest of io/ calls libcurl's functions under their own names, declared by <curl/curl.h>:
// curl_api.cpp defines each one (same name and signature) as a forwarder to the loaded library.
// Call them only after curl_load() returned true.
#pragma once

#include <string>

namespace nettally {

// The library's soname (libcurl's ABI 4, every libcurl since 7.16).
inline constexpr const char* kLibcurlSoname = "libcurl.so.4";

// On the first call: dlopen(libcurl.so.4, RTLD_NOW | RTLD_LOCAL), resolve every curl_* function
// io/ calls, and curl_global_init(CURL_GLOBAL_DEFAULT). Returns true once that is done; later
// calls return at once. Returns false with *why (one line naming the library, with dlerror()'s
// text) when it cannot: the caller fails its transfer with it, and the next call tries again (a
// libcurl installed meanwhile is taken). Thread-safe.
bool curl_load(std::string* why);

} // namespace nettally
