// Internal: the JSON "META" section that opens every file imgsearch writes, read the same
// way by each loader.
#pragma once

#include "binary_file.h"
#include "imgsearch/error.h"
#include "model_info_json.h"

#include <exception>
#include <string>

namespace imgsearch::detail {

// Parses the META section (checksummed, depth-limited) and hands it to `read`. Whatever
// `read` throws becomes one Error(Format) naming the file: "PATH: corrupt (bad metadata:
// ...)". Errors that already name the file (from in.fail) pass through unchanged; model
// metadata errors do not name it, so they are wrapped too.
template <class Read>
void read_meta_section(const BinaryFileReader& in, const std::string& path, Read&& read) {
  const auto [data, size] = in.section("META");
  try {
    read(parse_json_limited(data, size));
  } catch (const Error& e) {
    if (e.kind() == ErrorKind::Format && std::string(e.what()).rfind(path, 0) == 0) throw;
    in.fail(std::string("bad metadata: ") + e.what());
  } catch (const std::exception& e) {
    in.fail(std::string("bad metadata: ") + e.what());
  }
}

}  // namespace imgsearch::detail
