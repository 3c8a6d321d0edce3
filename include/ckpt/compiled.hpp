#pragma once

// The optional compiled mode (README, "Compile time"). Header-only is the
// default: every translation unit that saves or loads compiles the file
// format's code (header parsing and writing, the save pipeline, the reader)
// and optimises it again. A program linked with the CMake target
// ckpt::compiled gets CKPT_COMPILED defined, and then the declarations below
// tell the compiler that those templates are instantiated once, in the
// library's src/compiled.cpp: each translation unit that includes
// <ckpt/ckpt.hpp> only calls them. Without CKPT_COMPILED this header declares
// nothing and ckpt stays header-only.
//
// Only what does not depend on the user's types is here: Checkpoint<State>
// and describe() are compiled where State is known, as always.

#include <cstddef>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "ckpt/codecs/registry.hpp"
#include "ckpt/describe.hpp"
#include "ckpt/detail/format/blocks.hpp"
#include "ckpt/detail/format/header_parser.hpp"
#include "ckpt/detail/format/header_writer.hpp"
#include "ckpt/detail/format/strict_json.hpp"
#include "ckpt/detail/os/thread_pool.hpp"
#include "ckpt/detail/state/name_registry.hpp"
#include "ckpt/detail/write/pipeline.hpp"
#include "ckpt/detail/write/plan.hpp"
#include "ckpt/reader.hpp"
#include "ckpt/writer.hpp"

// `extern` in users' code (an explicit instantiation declaration); empty in
// src/compiled.cpp, which so turns the same list into the definitions.
#if defined(CKPT_COMPILED) || defined(CKPT_COMPILED_INSTANTIATE)
#ifndef CKPT_COMPILED_INSTANTIATE
#define CKPT_COMPILED_INSTANTIATE extern
#endif

namespace ckpt {

// Saving: arguments, plan, header, pipeline.
CKPT_COMPILED_INSTANTIATE template SaveStats write_checkpoint<void>(const std::string&, const std::vector<NamedTensor>&,
                                                                    const nlohmann::json&, const SaveOptions&);
// Reading: the header, the tensors' bytes, their checks.
CKPT_COMPILED_INSTANTIATE template Reader::Reader<void>(const std::string&, ReadOptions);
CKPT_COMPILED_INSTANTIATE template void Reader::decode_into<void>(std::size_t, std::byte*, bool) const;
// Loading a state: matching the file's names with describe()'s.
CKPT_COMPILED_INSTANTIATE template LoadingArchive::LoadingArchive<void>(const Reader&);
CKPT_COMPILED_INSTANTIATE template LoadReport LoadingArchive::finish<void>(bool);
// Codecs by name (a save's policy and a read's stored specs).
CKPT_COMPILED_INSTANTIATE template std::shared_ptr<const Codec> CodecRegistry::make<void>(const std::string&) const;

namespace detail {
CKPT_COMPILED_INSTANTIATE template class HeaderParser<void>;
CKPT_COMPILED_INSTANTIATE template class SavePipeline<void>;
CKPT_COMPILED_INSTANTIATE template class NameRegistry<void>;
CKPT_COMPILED_INSTANTIATE template class CodecCache<void>;
CKPT_COMPILED_INSTANTIATE template class BlockVerifier<void>;
CKPT_COMPILED_INSTANTIATE template class ThreadPool<void>;
CKPT_COMPILED_INSTANTIATE template std::optional<nlohmann::json> parse_strict_json<void>(std::string_view, std::size_t,
                                                                                         std::size_t, std::string&);
CKPT_COMPILED_INSTANTIATE template FileLayout plan_tensors<void>(const std::string&, const std::vector<NamedTensor>&,
                                                                 const CodecPolicy&, std::size_t, CodecCache<>&,
                                                                 const std::map<std::string, BaseReader>&,
                                                                 const std::vector<std::size_t>*);
CKPT_COMPILED_INSTANTIATE template std::string build_header<void>(const std::vector<TensorRecord>&,
                                                                  const nlohmann::json&, std::uint64_t,
                                                                  const HeaderExtras&);
}  // namespace detail

}  // namespace ckpt

#endif
