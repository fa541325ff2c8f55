// What validate_pipeline() refuses, as a list that says which part of the pipeline each problem
// is about, so that a pipeline file can point at the line of the stage or table at fault.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "sluice/pipeline.h"

namespace sluice::detail {

struct PipelineProblem {
  enum class Part { kPipeline, kInput, kStage, kOutput };
  Part part = Part::kPipeline;
  std::size_t stage = 0;  // with kStage: the index into PipelineSpec::stages
  std::string message;
};

// Everything wrong with `spec`'s shape, in the order of its stages; empty when it can run.
std::vector<PipelineProblem> pipeline_problems(const PipelineSpec& spec);

}  // namespace sluice::detail
