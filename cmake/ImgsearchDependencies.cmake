# All dependencies come from Debian packages; see scripts/install-deps.sh.
find_package(Torch REQUIRED)           # libtorch-dev
find_package(fmt REQUIRED)             # libfmt-dev
find_package(nlohmann_json 3 REQUIRED) # nlohmann-json3-dev
find_package(PkgConfig REQUIRED)
find_package(Threads REQUIRED)

# hnswlib is header-only and ships no CMake config.
find_path(HNSWLIB_INCLUDE_DIR hnswlib/hnswlib.h REQUIRED)
if(NOT TARGET imgsearch_hnswlib)
  add_library(imgsearch_hnswlib INTERFACE)
  target_include_directories(imgsearch_hnswlib SYSTEM INTERFACE ${HNSWLIB_INCLUDE_DIR})
endif()

# Debian's stb ships libstb.so with the implementations compiled in: link it and never
# define STB_*_IMPLEMENTATION ourselves.
pkg_check_modules(STB REQUIRED IMPORTED_TARGET stb)

# libxxhash-dev: fast checksums for the files imgsearch writes.
find_path(XXHASH_INCLUDE_DIR xxhash.h REQUIRED)
find_library(XXHASH_LIBRARY xxhash REQUIRED)

# libturbojpeg0-dev: JPEG decoding with DCT scaling.
find_path(TURBOJPEG_INCLUDE_DIR turbojpeg.h REQUIRED)
find_library(TURBOJPEG_LIBRARY turbojpeg REQUIRED)

# libwebp-dev: WebP decoding (libwebpdemux for the first frame of animated WebP).
pkg_check_modules(WEBP REQUIRED IMPORTED_TARGET libwebp libwebpdemux)
