// Deterministic decoding of a fuzz input into typed values, for the targets whose input is not
// one text (a D-Bus field map, a choice of parser). Like libFuzzer's FuzzedDataProvider, but a
// plain header: the corpus replay (tests/fuzz/replay_main.cpp) is built by g++ without clang's
// fuzzer headers, and must decode every corpus file exactly as the fuzzer did.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace nettally::fuzz {

class FuzzInput {
public:
    FuzzInput(const uint8_t* data, size_t size) : data_(data), size_(size) {}

    bool empty() const { return pos_ >= size_; }

    // One byte; 0 once the input is used up.
    uint8_t byte() { return empty() ? 0 : data_[pos_++]; }

    // A number from up to 8 bytes, little-endian.
    uint64_t u64() {
        uint64_t v = 0;
        for (int i = 0; i < 8 && !empty(); ++i) {
            v |= uint64_t{byte()} << (8 * i);
        }
        return v;
    }

    // A text of at most `max` bytes: the length is the next byte (capped by what is left).
    std::string text(size_t max = 255) {
        size_t n = byte();
        if (n > max) {
            n = max;
        }
        if (n > size_ - pos_) {
            n = size_ - pos_;
        }
        std::string s(reinterpret_cast<const char*>(data_ + pos_), n);
        pos_ += n;
        return s;
    }

    // Everything not consumed yet.
    std::string rest() {
        std::string s(reinterpret_cast<const char*>(data_ + pos_), size_ - pos_);
        pos_ = size_;
        return s;
    }

private:
    const uint8_t* data_;
    size_t size_;
    size_t pos_ = 0;
};

} // namespace nettally::fuzz
