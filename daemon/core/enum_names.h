// Enum names from one table: to_string() indexes an array of names (the enum counts from 0
// in declaration order), parsing looks a name up among the values' to_string().
#pragma once

#include <array>
#include <cstddef>
#include <initializer_list>
#include <optional>
#include <string_view>

namespace nettally {

// names[e], or "?" for a value outside the table.
template <typename E, size_t N>
constexpr std::string_view enum_name(const std::array<std::string_view, N>& names, E e) {
    const auto i = static_cast<size_t>(e);
    return i < N ? names[i] : std::string_view("?");
}

// The value among `all` whose to_string() is `text`, or nullopt.
template <typename E>
constexpr std::optional<E> parse_enum(std::string_view text, std::initializer_list<E> all) {
    for (E e : all)
        if (to_string(e) == text)
            return e;
    return std::nullopt;
}

} // namespace nettally
