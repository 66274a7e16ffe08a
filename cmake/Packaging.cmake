# Man page, shell completion, docs and the Debian packages (cpack -G DEB):
#   imgsearch         the command, the built-in model, completion, man page
#   libimgsearch-dev  the static libraries, headers and the CMake package
include(GNUInstallDirs)

# imgsearch(1) from docs/cli.md, when pandoc is there (scripts/install-deps.sh --test).
find_program(PANDOC_EXECUTABLE pandoc)
if(PANDOC_EXECUTABLE)
  set(IMGSEARCH_MANPAGE ${PROJECT_BINARY_DIR}/share/man/man1/imgsearch.1)
  add_custom_command(OUTPUT ${IMGSEARCH_MANPAGE}
    COMMAND ${CMAKE_COMMAND} -E make_directory ${PROJECT_BINARY_DIR}/share/man/man1
    COMMAND bash ${PROJECT_SOURCE_DIR}/scripts/make_manpage.sh ${PROJECT_SOURCE_DIR}/docs/cli.md
            ${PROJECT_VERSION} ${IMGSEARCH_MANPAGE}
    DEPENDS ${PROJECT_SOURCE_DIR}/docs/cli.md ${PROJECT_SOURCE_DIR}/scripts/make_manpage.sh
    COMMENT "Generating imgsearch(1) from docs/cli.md")
  add_custom_target(imgsearch_manpage ALL DEPENDS ${IMGSEARCH_MANPAGE})
  install(FILES ${IMGSEARCH_MANPAGE} DESTINATION ${CMAKE_INSTALL_MANDIR}/man1 COMPONENT cli)
else()
  message(STATUS "pandoc not found: no man page (apt-get install pandoc)")
endif()

install(FILES ${PROJECT_SOURCE_DIR}/completions/imgsearch.bash
        DESTINATION ${CMAKE_INSTALL_DATADIR}/bash-completion/completions RENAME imgsearch COMPONENT cli)
install(FILES ${PROJECT_SOURCE_DIR}/README.md ${PROJECT_SOURCE_DIR}/LICENSE
        DESTINATION ${CMAKE_INSTALL_DOCDIR} COMPONENT cli)
install(DIRECTORY ${PROJECT_SOURCE_DIR}/docs/ DESTINATION ${CMAKE_INSTALL_DOCDIR}/docs COMPONENT cli
        FILES_MATCHING PATTERN "*.md")

set(CPACK_PACKAGE_NAME imgsearch)
set(CPACK_PACKAGE_VENDOR "imgsearch developers")
set(CPACK_PACKAGE_CONTACT "imgsearch developers <imgsearch@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "content-based image search: find the images that look like a query image")
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_RESOURCE_FILE_LICENSE ${PROJECT_SOURCE_DIR}/LICENSE)
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_COMPONENTS_ALL cli dev)
set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION graphics)
set(CPACK_DEBIAN_CLI_PACKAGE_NAME imgsearch)
set(CPACK_DEBIAN_CLI_PACKAGE_SECTION graphics)
# Runtime dependencies from the binary's shared libraries (dpkg-shlibdeps: libtorch,
# libturbojpeg, libwebp, libxxhash, ...), so the package asks for exactly what it links.
set(CPACK_DEBIAN_CLI_PACKAGE_SHLIBDEPS ON)
# LibTorch uses OpenBLAS for its matrix products where installed; without it, the slow reference BLAS.
set(CPACK_DEBIAN_CLI_PACKAGE_RECOMMENDS "libopenblas0-pthread, bash-completion")
set(CPACK_DEBIAN_DEV_PACKAGE_NAME libimgsearch-dev)
set(CPACK_DEBIAN_DEV_PACKAGE_SECTION libdevel)
set(CPACK_DEBIAN_DEV_PACKAGE_DEPENDS
    "libtorch-dev, libfmt-dev, libturbojpeg0-dev, libwebp-dev, libxxhash-dev, libstb-dev, libblas-dev, pkg-config, cmake")
set(CPACK_COMPONENT_CLI_DESCRIPTION "imgsearch command-line tool with its built-in model (MobileNetV2, ImageNet)")
set(CPACK_COMPONENT_DEV_DESCRIPTION "imgsearch static libraries, headers and CMake package (find_package(imgsearch))")
include(CPack)
