// Transfers: libcurl's multi socket API on sd-event. curl tells us which sockets to watch
// (CURLMOPT_SOCKETFUNCTION -> one io source per fd) and when to call it back
// (CURLMOPT_TIMERFUNCTION -> one timer source); we hand every event to curl_multi_socket_action
// and read finished transfers from curl_multi_info_read. One transfer at a time. file:// targets
// are a copy through the OS layer instead.
#include "io/upload.h"

#include "io/curl_api.h"
#include "io/upload_transfer.h"
#include "os/error.h"
#include "os/file.h"

#include <curl/curl.h>
#include <spdlog/spdlog.h>
#include <sys/epoll.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

namespace nettally {
namespace fs = std::filesystem;

// file:// targets: copy into the directory under the .part name, fsync, rename, fsync the directory.
void Uploader::copy_to_directory() {
    const fs::path dir = target_->dir;
    const fs::path part = dir / (transfer_->name + std::string(kPartSuffix));
    const fs::path final_path = dir / transfer_->name;
    Classified c{UploadOutcome::Success, ""};
    try {
        std::error_code ec;
        fs::create_directories(dir, ec);
        if (ec)
            throw SysError(ec.value(), "creating " + dir.string());
        std::ifstream in(spool_dir_ / transfer_->name, std::ios::binary);
        if (!in)
            throw SysError(errno, "opening " + (spool_dir_ / transfer_->name).string());
        std::stringstream ss;
        ss << in.rdbuf();
        write_file_atomic(part, ss.str(), 0640);
        if (rename(part.c_str(), final_path.c_str()) != 0)
            throw SysError(errno, "renaming " + part.string());
        sync_path(dir);
    } catch (const SysError& e) {
        c = Classified{e.err() == EACCES || e.err() == EPERM ? UploadOutcome::Permanent
                                                             : UploadOutcome::Transient,
                       std::string("copy: ") + e.what()};
    }
    finish(c);
}

namespace {
size_t on_header(char* data, size_t size, size_t n, void* userp) {
    auto* retry_after = static_cast<std::string*>(userp);
    const std::string_view line(data, size * n);
    constexpr std::string_view key = "retry-after:";
    if (line.size() > key.size()) {
        std::string head(line.substr(0, key.size()));
        for (auto& c : head)
            c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        if (head == key)
            *retry_after = std::string(line.substr(key.size()));
    }
    return size * n;
}
} // namespace

// What every request of a transfer shares: limits, timeouts, credentials, TLS and SSH checks.
void Uploader::set_options(Transfer& t) {
    CURL* e = t.easy;
    const auto& c = cfg_;
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, t.error);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "ftp,ftps,sftp,http,https");
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(c.connect_timeout.count()));
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, static_cast<long>(c.transfer_timeout.count()));
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME,
                     static_cast<long>(std::max<int64_t>(1, c.stall_timeout.count() / 1000)));
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, &t.retry_after);
    curl_easy_setopt(e, CURLOPT_PRIVATE, this);
    // Credentials as options, never inside the URL (curl would echo the URL in errors).
    if (!username_.empty())
        curl_easy_setopt(e, CURLOPT_USERNAME, username_.c_str());
    if (!password_.empty())
        curl_easy_setopt(e, CURLOPT_PASSWORD, password_.c_str());
    if (!c.ca_file.empty())
        curl_easy_setopt(e, CURLOPT_CAINFO, c.ca_file.c_str());
    if (c.insecure) {
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    const auto scheme = target_->scheme;
    if (scheme == UploadScheme::Sftp) {
        curl_easy_setopt(e, CURLOPT_SSH_AUTH_TYPES,
                         static_cast<long>(CURLSSH_AUTH_PASSWORD | CURLSSH_AUTH_KEYBOARD));
        if (!c.ssh_host_key_sha256.empty())
            curl_easy_setopt(e, CURLOPT_SSH_HOST_PUBLIC_KEY_SHA256, c.ssh_host_key_sha256.c_str());
        if (!c.ssh_known_hosts.empty())
            curl_easy_setopt(e, CURLOPT_SSH_KNOWNHOSTS, c.ssh_known_hosts.c_str());
    }
    if (scheme == UploadScheme::Ftps || scheme == UploadScheme::Ftpes)
        curl_easy_setopt(e, CURLOPT_USE_SSL, static_cast<long>(CURLUSESSL_ALL)); // never fall back to plain
    if (scheme == UploadScheme::Http || scheme == UploadScheme::Https)
        curl_easy_setopt(e, CURLOPT_HTTPAUTH, static_cast<long>(CURLAUTH_BASIC));
}

// libcurl (io/curl_api.h) and the multi handle come with the first transfer, not with the
// Uploader: a daemon that never uploads never loads libcurl. nullopt when ready, else the failure.
std::optional<Classified> Uploader::open_multi() {
    if (multi_)
        return std::nullopt;
    std::string why;
    if (!curl_load(&why)) // not installed: retried at the slow pace, as a refusal is
        return Classified{UploadOutcome::Permanent, why};
    multi_ = curl_multi_init();
    if (!multi_)
        return Classified{UploadOutcome::Transient, "curl_multi_init failed"};
    curl_multi_setopt(multi_, CURLMOPT_SOCKETFUNCTION, &Uploader::on_socket);
    curl_multi_setopt(multi_, CURLMOPT_SOCKETDATA, this);
    curl_multi_setopt(multi_, CURLMOPT_TIMERFUNCTION, &Uploader::on_curl_timer);
    curl_multi_setopt(multi_, CURLMOPT_TIMERDATA, this);
    return std::nullopt;
}

void Uploader::start_step() {
    Transfer& t = *transfer_;
    t.release();
    t.error[0] = 0;
    t.retry_after.clear();
    if (const auto failed = open_multi()) {
        finish(*failed);
        return;
    }
    CURL* e = curl_easy_init();
    if (!e) {
        finish(Classified{UploadOutcome::Transient, "curl_easy_init failed"});
        return;
    }
    t.easy = e;
    set_options(t);
    if (t.step == 0) {
        t.in = fopen((spool_dir_ / t.name).c_str(), "rbe");
        if (!t.in) {
            // Gone meanwhile (dropped by the cap, removed by an operator): nothing to send.
            const int err = errno;
            t.release();
            finish(Classified{err == ENOENT ? UploadOutcome::Success : UploadOutcome::Transient,
                              err == ENOENT ? "" : std::string("open: ") + std::strerror(err)});
            return;
        }
        curl_easy_setopt(e, CURLOPT_URL, t.plan.temp_url.c_str());
        curl_easy_setopt(e, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(e, CURLOPT_READDATA, t.in);
        curl_easy_setopt(e, CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(t.size));
        curl_easy_setopt(e, CURLOPT_FTP_CREATE_MISSING_DIRS, static_cast<long>(CURLFTP_CREATE_DIR_RETRY));
        for (const auto& q : t.plan.postquote)
            t.quote = curl_slist_append(t.quote, q.c_str());
        if (t.quote)
            curl_easy_setopt(e, CURLOPT_POSTQUOTE, t.quote);
    } else {
        // WebDAV MOVE of the finished temporary file onto its final name.
        curl_easy_setopt(e, CURLOPT_URL, t.plan.temp_url.c_str());
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, "MOVE");
        curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
        t.headers = curl_slist_append(t.headers, ("Destination: " + t.plan.move_destination).c_str());
        t.headers = curl_slist_append(t.headers, "Overwrite: T");
        curl_easy_setopt(e, CURLOPT_HTTPHEADER, t.headers);
    }
    const CURLMcode mc = curl_multi_add_handle(multi_, e);
    if (mc != CURLM_OK) {
        t.release();
        finish(Classified{UploadOutcome::Transient,
                          std::string("curl_multi_add_handle: ") + curl_multi_strerror(mc)});
    }
}

int Uploader::on_socket(void*, int fd, int what, void* userp, void*) {
    auto* u = static_cast<Uploader*>(userp);
    auto it = u->io_.find(fd);
    if (what == CURL_POLL_REMOVE) {
        if (it != u->io_.end())
            u->io_.erase(it);
        return 0;
    }
    uint32_t events = 0;
    if (what == CURL_POLL_IN || what == CURL_POLL_INOUT)
        events |= EPOLLIN;
    if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT)
        events |= EPOLLOUT;
    if (it != u->io_.end()) {
        sd_event_source_set_io_events(it->second.get(), events);
        return 0;
    }
    EventSource src;
    const int r = sd_event_add_io(u->ev_, src.put(), fd, events, on_io, u);
    if (r < 0) {
        spdlog::error("upload: cannot watch a transfer socket: {}", std::strerror(-r));
        return -1;
    }
    u->io_[fd] = std::move(src);
    return 0;
}

int Uploader::on_curl_timer(void*, long timeout_ms, void* userp) {
    auto* u = static_cast<Uploader*>(userp);
    if (timeout_ms < 0) {
        sd_event_source_set_enabled(u->curl_timer_.get(), SD_EVENT_OFF);
        return 0;
    }
    sd_event_source_set_time(u->curl_timer_.get(),
                             u->now_us(CLOCK_MONOTONIC) + static_cast<uint64_t>(timeout_ms) * 1000);
    sd_event_source_set_enabled(u->curl_timer_.get(), SD_EVENT_ONESHOT);
    return 0;
}

int Uploader::on_io(sd_event_source*, int fd, uint32_t revents, void* userp) {
    auto* u = static_cast<Uploader*>(userp);
    int mask = 0;
    if (revents & EPOLLIN)
        mask |= CURL_CSELECT_IN;
    if (revents & EPOLLOUT)
        mask |= CURL_CSELECT_OUT;
    if (revents & (EPOLLERR | EPOLLHUP))
        mask |= CURL_CSELECT_ERR;
    int running = 0;
    curl_multi_socket_action(u->multi_, fd, mask, &running);
    u->check_done();
    return 0;
}

int Uploader::on_curl_timeout(sd_event_source*, uint64_t, void* userp) {
    auto* u = static_cast<Uploader*>(userp);
    int running = 0;
    curl_multi_socket_action(u->multi_, CURL_SOCKET_TIMEOUT, 0, &running);
    u->check_done();
    return 0;
}

void Uploader::check_done() {
    int left = 0;
    while (CURLMsg* m = curl_multi_info_read(multi_, &left)) {
        if (m->msg != CURLMSG_DONE || !transfer_ || m->easy_handle != transfer_->easy)
            continue;
        const CURLcode code = m->data.result;
        long response = 0;
        curl_easy_getinfo(m->easy_handle, CURLINFO_RESPONSE_CODE, &response);
        curl_multi_remove_handle(multi_, m->easy_handle);
        try {
            finish_step(code, response);
        } catch (const std::exception& e) {
            spdlog::error("upload: {}", e.what());
        }
        return; // the handle list changed
    }
}

void Uploader::finish_step(int curl_code, long response_code) {
    Transfer& t = *transfer_;
    TransferResult r{curl_code, response_code, t.error, curl_easy_strerror(static_cast<CURLcode>(curl_code))};
    const Classified c = classify_transfer(target_->scheme, r, t.step == 0 ? "upload" : "rename (MOVE)");
    if (c.outcome == UploadOutcome::Success && !t.plan.move_destination.empty() && t.step == 0) {
        t.step = 1;
        start_step();
        return;
    }
    finish(c);
}

} // namespace nettally
