// Test helper: reads an imgsearch container file (docs/formats.md), lets a test replace,
// drop or add sections, and writes it back with a correct table and correct checksums,
// so that hostile content gets past the checksums and reaches the structural checks.
#pragma once

#include <xxhash.h>

#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string>
#include <vector>

namespace test {

using Bytes = std::vector<std::uint8_t>;

inline Bytes read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(path + ": cannot open");
  return Bytes(std::istreambuf_iterator<char>(in), {});
}

inline void write_bytes(const std::string& path, const Bytes& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  if (!out) throw std::runtime_error(path + ": cannot write");
}

template <typename T>
T get(const Bytes& b, std::size_t off) {
  T v;
  if (off + sizeof v > b.size()) throw std::runtime_error("get: out of range");
  std::memcpy(&v, b.data() + off, sizeof v);
  return v;
}
template <typename T>
void put(Bytes& b, std::size_t off, T v) {
  if (off + sizeof v > b.size()) throw std::runtime_error("put: out of range");
  std::memcpy(b.data() + off, &v, sizeof v);
}
template <typename T>
void append(Bytes& b, T v) {
  const auto* p = reinterpret_cast<const std::uint8_t*>(&v);
  b.insert(b.end(), p, p + sizeof v);
}

struct Container {
  struct Section {
    std::string tag;
    Bytes data;
  };
  char magic[8] = {};
  std::uint32_t version = 0;
  std::vector<Section> sections;

  static constexpr std::size_t kEntryBytes = 32;
  static std::size_t header_bytes(std::size_t n) { return 8 + 4 + 4 + n * kEntryBytes + 8; }

  static Container parse(const Bytes& b) {
    Container c;
    std::memcpy(c.magic, b.data(), 8);
    c.version = get<std::uint32_t>(b, 8);
    const auto n = get<std::uint32_t>(b, 12);
    for (std::uint32_t i = 0; i < n; ++i) {
      const std::size_t e = 16 + i * kEntryBytes;
      Section s;
      s.tag.assign(reinterpret_cast<const char*>(b.data() + e), strnlen(reinterpret_cast<const char*>(b.data() + e), 8));
      const auto off = get<std::uint64_t>(b, e + 8);
      const auto size = get<std::uint64_t>(b, e + 16);
      s.data.assign(b.begin() + static_cast<std::ptrdiff_t>(off), b.begin() + static_cast<std::ptrdiff_t>(off + size));
      c.sections.push_back(std::move(s));
    }
    return c;
  }
  static Container load(const std::string& path) { return parse(read_bytes(path)); }

  Section& section(const std::string& tag) {
    for (auto& s : sections)
      if (s.tag == tag) return s;
    throw std::runtime_error("no section " + tag);
  }
  void drop(const std::string& tag) {
    for (auto it = sections.begin(); it != sections.end(); ++it)
      if (it->tag == tag) {
        sections.erase(it);
        return;
      }
  }

  // Lays the sections out 64-byte aligned, as the writer does, with valid checksums.
  Bytes serialize() const {
    auto align = [](std::size_t v) { return (v + 63) / 64 * 64; };
    Bytes b(align(header_bytes(sections.size())), 0);
    std::memcpy(b.data(), magic, 8);
    put(b, 8, version);
    put(b, 12, static_cast<std::uint32_t>(sections.size()));
    for (std::size_t i = 0; i < sections.size(); ++i) {
      const Section& s = sections[i];
      b.resize(align(b.size()), 0);
      const std::uint64_t off = b.size();
      b.insert(b.end(), s.data.begin(), s.data.end());
      const std::size_t e = 16 + i * kEntryBytes;
      char tag[8] = {};
      std::memcpy(tag, s.tag.data(), std::min<std::size_t>(s.tag.size(), 8));
      std::memcpy(b.data() + e, tag, 8);
      put(b, e + 8, off);
      put(b, e + 16, static_cast<std::uint64_t>(s.data.size()));
      put(b, e + 24, static_cast<std::uint64_t>(XXH3_64bits(s.data.data(), s.data.size())));
    }
    fix_header_checksum(b);
    return b;
  }
  void save(const std::string& path) const { write_bytes(path, serialize()); }

  // Recomputes the header checksum of raw bytes after a test edited the table by hand.
  static void fix_header_checksum(Bytes& b) {
    const auto n = get<std::uint32_t>(b, 12);
    const std::size_t hb = header_bytes(n);
    put(b, hb - 8, static_cast<std::uint64_t>(XXH3_64bits(b.data(), hb - 8)));
  }
  // Where section `tag`'s bytes start in the serialized file.
  static std::size_t offset_of(const Bytes& b, const std::string& tag) {
    const auto n = get<std::uint32_t>(b, 12);
    for (std::uint32_t i = 0; i < n; ++i) {
      const std::size_t e = 16 + i * kEntryBytes;
      if (std::string(reinterpret_cast<const char*>(b.data() + e), strnlen(reinterpret_cast<const char*>(b.data() + e), 8)) == tag)
        return get<std::uint64_t>(b, e + 8);
    }
    throw std::runtime_error("no section " + tag);
  }
};

// The GRAPH section of an index (docs/formats.md), decoded for editing.
struct Graph {
  std::uint32_t top_level = 0, entry_point = 0;
  std::vector<std::vector<std::vector<std::uint32_t>>> links;  // node -> level -> ids

  static Graph parse(const Bytes& b) {
    Graph g;
    std::size_t p = 0;
    auto u32 = [&] {
      const auto v = get<std::uint32_t>(b, p);
      p += 4;
      return v;
    };
    g.top_level = u32();
    g.entry_point = u32();
    while (p < b.size()) {
      const std::uint32_t level = u32();
      std::vector<std::vector<std::uint32_t>> node(level + 1);
      for (auto& l : node) {
        l.resize(u32());
        for (auto& id : l) id = u32();
      }
      g.links.push_back(std::move(node));
    }
    return g;
  }
  Bytes serialize() const {
    Bytes b;
    append(b, top_level);
    append(b, entry_point);
    for (const auto& node : links) {
      append(b, static_cast<std::uint32_t>(node.size() - 1));
      for (const auto& l : node) {
        append(b, static_cast<std::uint32_t>(l.size()));
        for (auto id : l) append(b, id);
      }
    }
    return b;
  }
};

}  // namespace test
