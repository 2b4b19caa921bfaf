// The org.nettally.Accounting1.Records interface on nettallyd's object: the generated adaptor's
// methods over the Recorder, and its FileRotated signal. Registers on construction, unregisters
// on destruction.
#pragma once

#include "io/records.h"
#include "records1_adaptor.h"

#include <sdbus-c++/sdbus-c++.h>

namespace nettally {

class RecordsService final : public sdbus::AdaptorInterfaces<org::nettally::Accounting1::Records_adaptor> {
public:
    RecordsService(sdbus::IConnection& conn, Recorder& recorder);
    ~RecordsService();
    RecordsService(const RecordsService&) = delete;
    RecordsService& operator=(const RecordsService&) = delete;

    // Emits FileRotated (logs when the signal cannot be sent).
    void file_rotated(const ClosedFile& f);

private:
    std::map<std::string, sdbus::Variant> GetSettings() override;
    void SetSettings(const std::map<std::string, sdbus::Variant>& settings) override;
    std::vector<std::string> Rotate() override;
    std::vector<sdbus::Struct<std::string, uint64_t, std::string, uint64_t>> ListSpool() override;

    Recorder& recorder_;
};

// a{sv} of SetSettings as the JSON object Recorder::set_overrides takes; throws
// std::invalid_argument naming the key when a value has the wrong type.
nlohmann::json settings_from_variants(const std::map<std::string, sdbus::Variant>& settings);

} // namespace nettally
