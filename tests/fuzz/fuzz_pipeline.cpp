// Fuzz target: the pipeline-file parser (TOML, then every key checked) and the shape check.
// Anything wrong with a file must be a sluice::Error naming where; nothing else may escape.
#include <string>

#include "sluice/error.h"
#include "sluice/pipeline.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    const sluice::PipelineSpec spec = sluice::parse_pipeline_text(text, "fuzz.toml");
    sluice::validate_pipeline(spec);
  } catch (const sluice::Error&) {
  }
  return 0;
}
