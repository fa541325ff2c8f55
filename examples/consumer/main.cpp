// Compresses a buffer with each built-in codec through the installed library and checks the
// round trip, then parses a pipeline from TOML text. Prints one line per check; exits non-zero
// on any failure.
#include <cstdio>
#include <cstring>
#include <string>

#include "sluice/batch.h"
#include "sluice/compress.h"
#include "sluice/decompress.h"
#include "sluice/pipeline.h"

int main() {
  std::string text;
  for (int i = 0; i < 20000; ++i) text += "an embedded sluice graph, line " + std::to_string(i) + "\n";
  const sluice::ByteView input = sluice::as_bytes(text);
  int failures = 0;
  for (const char* codec : {"gzip", "zstd", "lz4"}) {
    sluice::CompressOptions options;
    options.codec = codec;
    const sluice::Buffer packed = sluice::compress_buffer(input, options);
    const sluice::Buffer plain = sluice::decompress_buffer(packed.view());
    const bool same = plain.size() == input.size() && std::memcmp(plain.data(), input.data(), input.size()) == 0;
    std::printf("%s: %zu -> %zu bytes, round trip %s\n", codec, input.size(), packed.size(), same ? "ok" : "FAILED");
    failures += same ? 0 : 1;
  }
  const sluice::PipelineSpec spec = sluice::parse_pipeline_text(
      "[input]\npaths = [\"in.log\"]\n[[stage]]\nkind = \"compress\"\ncodec = \"lz4\"\n[output]\nfile = \"in.log.lz4\"\n",
      "inline.toml");
  const bool pipeline_ok = spec.stages.size() == 1 && spec.stages[0].codec == "lz4";
  std::printf("pipeline: %zu stage(s), codec %s %s\n", spec.stages.size(), spec.stages[0].codec.c_str(),
              pipeline_ok ? "ok" : "FAILED");
  failures += pipeline_ok ? 0 : 1;
  return failures == 0 ? 0 : 1;
}
