// See curl_api.h. Why forwarders under libcurl's own names rather than a table of function
// pointers the call sites go through: the ~80 calls in io/ stay plain libcurl, as its manual
// writes them, and a call this file does not forward fails at link time (nettallyd does not link
// libcurl), so none can slip past the lazy load. <curl/curl.h> declares these names without any
// attribute or macro in C++ (its type-checking macros are C only), so defining them needs no
// trick. nettallyd does not export them (an executable exports only what a linked shared library
// refers to), so libcurl, loaded RTLD_LOCAL, still binds its own calls to itself.
#include "io/curl_api.h"

#include <curl/curl.h>
#include <dlfcn.h>

#include <atomic>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <mutex>

namespace nettally {
namespace {

// One pointer per libcurl function io/ calls, typed from the header's declaration.
struct CurlApi {
    decltype(&curl_global_init) global_init = nullptr;
    decltype(&curl_easy_init) easy_init = nullptr;
    decltype(&curl_easy_setopt) easy_setopt = nullptr;
    decltype(&curl_easy_perform) easy_perform = nullptr;
    decltype(&curl_easy_getinfo) easy_getinfo = nullptr;
    decltype(&curl_easy_cleanup) easy_cleanup = nullptr;
    decltype(&curl_easy_strerror) easy_strerror = nullptr;
    decltype(&curl_slist_append) slist_append = nullptr;
    decltype(&curl_slist_free_all) slist_free_all = nullptr;
    decltype(&curl_multi_init) multi_init = nullptr;
    decltype(&curl_multi_setopt) multi_setopt = nullptr;
    decltype(&curl_multi_add_handle) multi_add_handle = nullptr;
    decltype(&curl_multi_remove_handle) multi_remove_handle = nullptr;
    decltype(&curl_multi_socket_action) multi_socket_action = nullptr;
    decltype(&curl_multi_info_read) multi_info_read = nullptr;
    decltype(&curl_multi_strerror) multi_strerror = nullptr;
    decltype(&curl_multi_cleanup) multi_cleanup = nullptr;
};

std::mutex load_mutex;
void* lib = nullptr;                         // the dlopen() handle (under load_mutex)
CurlApi resolved;                            // written under load_mutex, before `loaded` is set
std::atomic<const CurlApi*> loaded{nullptr}; // &resolved once everything is done

// dlsym() into `fn`; the first missing name is kept in `missing` (with dlerror()'s text).
template <class Fn> void resolve(Fn& fn, const char* name, std::string& missing) {
    // dlsym() hands out a function as a void*: POSIX guarantees the round trip.
    fn = reinterpret_cast<Fn>(dlsym(lib, name));
    if (!fn && missing.empty()) {
        const char* err = dlerror();
        missing = err ? err : name;
    }
}

std::string resolve_all(CurlApi& a) {
    std::string missing;
    resolve(a.global_init, "curl_global_init", missing);
    resolve(a.easy_init, "curl_easy_init", missing);
    resolve(a.easy_setopt, "curl_easy_setopt", missing);
    resolve(a.easy_perform, "curl_easy_perform", missing);
    resolve(a.easy_getinfo, "curl_easy_getinfo", missing);
    resolve(a.easy_cleanup, "curl_easy_cleanup", missing);
    resolve(a.easy_strerror, "curl_easy_strerror", missing);
    resolve(a.slist_append, "curl_slist_append", missing);
    resolve(a.slist_free_all, "curl_slist_free_all", missing);
    resolve(a.multi_init, "curl_multi_init", missing);
    resolve(a.multi_setopt, "curl_multi_setopt", missing);
    resolve(a.multi_add_handle, "curl_multi_add_handle", missing);
    resolve(a.multi_remove_handle, "curl_multi_remove_handle", missing);
    resolve(a.multi_socket_action, "curl_multi_socket_action", missing);
    resolve(a.multi_info_read, "curl_multi_info_read", missing);
    resolve(a.multi_strerror, "curl_multi_strerror", missing);
    resolve(a.multi_cleanup, "curl_multi_cleanup", missing);
    return missing;
}

// The loaded library; a forwarder reached before curl_load() succeeded is a bug in io/.
const CurlApi& api() {
    const CurlApi* a = loaded.load(std::memory_order_acquire);
    if (!a) {
        std::fputs("nettallyd: a libcurl function was called before curl_load() succeeded\n", stderr);
        std::abort();
    }
    return *a;
}

// A function pointer of no particular type, for the options that take a callback.
using AnyFunction = void (*)();

// curl_easy_setopt's and curl_multi_setopt's third argument, read with the C type its option
// number says (curl.h, CURLOPTTYPE_*: CURLMOPT_* uses the same ranges) and passed on as that
// type. It cannot be passed on as one type for all: on a 32-bit ABI a long is 4 bytes and a
// curl_off_t 8, and a variadic argument is read as exactly the type the callee asks for.
template <class Setopt, class Handle, class Option>
auto forward_option(Setopt setopt, Handle* handle, Option option, va_list args) {
    const long number = option;
    if (number < CURLOPTTYPE_OBJECTPOINT) // CURLOPTTYPE_LONG, CURLOPTTYPE_VALUES
        return setopt(handle, option, va_arg(args, long));
    if (number < CURLOPTTYPE_FUNCTIONPOINT) // OBJECTPOINT, STRINGPOINT, SLISTPOINT, CBPOINT
        return setopt(handle, option, va_arg(args, void*));
    if (number < CURLOPTTYPE_OFF_T) // FUNCTIONPOINT: curl reads it back as its own callback type
        return setopt(handle, option, va_arg(args, AnyFunction));
    if (number < CURLOPTTYPE_BLOB)
        return setopt(handle, option, va_arg(args, curl_off_t));
    return setopt(handle, option, va_arg(args, void*)); // CURLOPTTYPE_BLOB: struct curl_blob*
}

} // namespace

bool curl_load(std::string* why) {
    if (loaded.load(std::memory_order_acquire))
        return true;
    const std::lock_guard lock(load_mutex);
    if (loaded.load(std::memory_order_relaxed))
        return true;
    if (!lib) {
        // RTLD_NOW: libcurl and its libraries bound here, not at some later call in a transfer;
        // RTLD_LOCAL: their symbols stay out of the process's global scope.
        lib = dlopen(kLibcurlSoname, RTLD_NOW | RTLD_LOCAL);
        if (!lib) {
            const char* err = dlerror();
            *why = std::string("cannot load ") + kLibcurlSoname +
                   " (libcurl, needed for transfers): " + (err ? err : "dlopen failed");
            return false;
        }
        if (const std::string missing = resolve_all(resolved); !missing.empty()) {
            dlclose(lib); // not the libcurl expected; a replaced one is opened afresh next time
            lib = nullptr;
            *why = std::string(kLibcurlSoname) + " lacks a function nettallyd calls: " + missing;
            return false;
        }
    }
    // Once, before any handle exists (a failure is retried at the next call).
    const CURLcode code = resolved.global_init(CURL_GLOBAL_DEFAULT);
    if (code != CURLE_OK) {
        *why = std::string("curl_global_init: ") + resolved.easy_strerror(code);
        return false;
    }
    loaded.store(&resolved, std::memory_order_release);
    return true;
}

} // namespace nettally

// The forwarders, with libcurl's names and signatures (see the top of this file).
extern "C" {

CURL* curl_easy_init() {
    return nettally::api().easy_init();
}

CURLcode curl_easy_setopt(CURL* curl, CURLoption option, ...) {
    va_list args;
    va_start(args, option);
    const CURLcode code = nettally::forward_option(nettally::api().easy_setopt, curl, option, args);
    va_end(args);
    return code;
}

CURLcode curl_easy_perform(CURL* curl) {
    return nettally::api().easy_perform(curl);
}

// Every CURLINFO_* takes a pointer to where the answer goes, whatever its type.
CURLcode curl_easy_getinfo(CURL* curl, CURLINFO info, ...) {
    va_list args;
    va_start(args, info);
    void* out = va_arg(args, void*);
    va_end(args);
    return nettally::api().easy_getinfo(curl, info, out);
}

void curl_easy_cleanup(CURL* curl) {
    if (curl) // a no-op in libcurl too, and one that needs no library
        nettally::api().easy_cleanup(curl);
}

const char* curl_easy_strerror(CURLcode code) {
    return nettally::api().easy_strerror(code);
}

curl_slist* curl_slist_append(curl_slist* list, const char* s) {
    return nettally::api().slist_append(list, s);
}

void curl_slist_free_all(curl_slist* list) {
    if (list) // as above: a transfer that never loaded libcurl frees its empty lists
        nettally::api().slist_free_all(list);
}

CURLM* curl_multi_init() {
    return nettally::api().multi_init();
}

CURLMcode curl_multi_setopt(CURLM* multi, CURLMoption option, ...) {
    va_list args;
    va_start(args, option);
    const CURLMcode code = nettally::forward_option(nettally::api().multi_setopt, multi, option, args);
    va_end(args);
    return code;
}

CURLMcode curl_multi_add_handle(CURLM* multi, CURL* curl) {
    return nettally::api().multi_add_handle(multi, curl);
}

CURLMcode curl_multi_remove_handle(CURLM* multi, CURL* curl) {
    return nettally::api().multi_remove_handle(multi, curl);
}

CURLMcode curl_multi_socket_action(CURLM* multi, curl_socket_t s, int ev_bitmask, int* running) {
    return nettally::api().multi_socket_action(multi, s, ev_bitmask, running);
}

CURLMsg* curl_multi_info_read(CURLM* multi, int* msgs_in_queue) {
    return nettally::api().multi_info_read(multi, msgs_in_queue);
}

const char* curl_multi_strerror(CURLMcode code) {
    return nettally::api().multi_strerror(code);
}

CURLMcode curl_multi_cleanup(CURLM* multi) {
    return nettally::api().multi_cleanup(multi);
}

} // extern "C"
