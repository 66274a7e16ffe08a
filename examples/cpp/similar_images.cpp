// similar_images INDEX IMAGE [K]: the K indexed images most like IMAGE, one
// "rank<TAB>score<TAB>path" line each, using the model the index was built with.
// Everything goes through imgsearch's public API: load_index, load_model_for_index, Searcher.
#include <imgsearch/error.h>
#include <imgsearch/index_io.h>
#include <imgsearch/searcher.h>

#include <cstdio>
#include <cstdlib>
#include <string>

int main(int argc, char** argv) {
  if (argc < 3 || argc > 4) {
    std::fprintf(stderr, "usage: %s INDEX IMAGE [K]\n", argv[0]);
    return 2;
  }
  try {
    const imgsearch::ImageIndex index = imgsearch::load_index(argv[1]);
    auto model = imgsearch::load_model_for_index(index.model().path, {}, index.model(), argv[1]);
    imgsearch::Searcher searcher(index, *model);
    imgsearch::SearchOptions options;
    options.k = argc == 4 ? std::atoi(argv[3]) : 5;
    const auto hits = searcher.search_file(argv[2], options);
    for (std::size_t r = 0; r < hits.size(); ++r)
      std::printf("%zu\t%.4f\t%s\n", r + 1, hits[r].score, index.entry(hits[r].id).path.c_str());
  } catch (const imgsearch::Error& e) {
    std::fprintf(stderr, "similar_images: %s\n", e.what());
    return 1;
  }
  return 0;
}
