// The state of the one transfer in flight (io/upload.h's Uploader::Transfer),
// shared by upload.cpp (which starts and ends transfers) and upload_transfer.cpp
// (which drives them). Private to io/.
#pragma once

#include "core/upload.h"
#include "io/upload.h"

#include <curl/curl.h>

#include <cstdio>
#include <string>

namespace nettally {

// One file on its way: a sequence of curl requests (upload [+ MOVE]).
struct Uploader::Transfer {
    std::string name;
    uint64_t size = 0;
    RemotePlan plan;
    int step = 0; // 0: upload, 1: http MOVE
    CURL* easy = nullptr;
    FILE* in = nullptr;
    curl_slist* quote = nullptr;
    curl_slist* headers = nullptr;
    char error[CURL_ERROR_SIZE] = {};
    std::string retry_after;

    ~Transfer() { release(); }
    void release() {
        if (easy)
            curl_easy_cleanup(easy);
        easy = nullptr;
        if (in)
            fclose(in);
        in = nullptr;
        curl_slist_free_all(quote);
        quote = nullptr;
        curl_slist_free_all(headers);
        headers = nullptr;
    }
};

} // namespace nettally
