// The org.nettally.Accounting1.Upload interface on nettallyd's object: the generated adaptor's
// methods over the Uploader, and its signals. Registers on construction, unregisters on
// destruction. The password is write-only: nothing here ever returns it.
#pragma once

#include "io/upload.h"
#include "upload1_adaptor.h"

#include <sdbus-c++/sdbus-c++.h>

namespace nettally {

class UploadService final : public sdbus::AdaptorInterfaces<org::nettally::Accounting1::Upload_adaptor> {
public:
    // `uploader` may be null (no upload configured at start): reads answer "disabled",
    // changes fail with Error.Failed.
    UploadService(sdbus::IConnection& conn, Uploader* uploader);
    ~UploadService();
    UploadService(const UploadService&) = delete;
    UploadService& operator=(const UploadService&) = delete;

    // UploadEvents that emit this interface's signals.
    UploadEvents events();
    void set_uploader(Uploader* u) { uploader_ = u; }

private:
    std::map<std::string, sdbus::Variant> GetUploadStatus() override;
    std::vector<sdbus::Struct<std::string, uint64_t, uint64_t, std::string, uint32_t, std::string>>
    ListSpool() override;
    void SetTarget(const std::string& url, const std::string& username, const std::string& password) override;
    void UploadNow() override;

    Uploader* uploader_;
};

} // namespace nettally
