// Test helper: a hostile index file (written with container_edit.h) must be refused by
// load_index with Error(Format) and a one-line message that starts with its path and
// names the reason.
#pragma once

#include "container_edit.h"

#include <imgsearch/error.h>
#include <imgsearch/index_io.h>

#include <catch2/catch.hpp>

#include <string>

namespace test {

inline void expect_index_refused(const Container& c, const std::string& path, const std::string& what) {
  c.save(path);
  try {
    imgsearch::load_index(path);
  } catch (const imgsearch::Error& e) {
    INFO(e.what());
    CHECK(e.kind() == imgsearch::ErrorKind::Format);
    CHECK(std::string(e.what()).rfind(path + ": ", 0) == 0);
    CHECK_THAT(e.what(), Catch::Matchers::Contains(what));
    return;
  }
  FAIL("loaded a hostile file: " << what);
}

}  // namespace test
