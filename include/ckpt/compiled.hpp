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
// A declaration alone would not stop g++ from compiling a member defined in
// its class (implicitly inline) for inlining, and all it reaches. So the
// roots of the list (the reader's constructor and reads, finish(),
// write_checkpoint) are defined out of their classes in blocks that
// CKPT_COMPILED leaves out: a program then parses their declarations only.
//
// Only what does not depend on the user's types is here: Checkpoint<State>
// and describe() are compiled where State is known, as always.

#include <cstddef>
#include <cstdint>
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
#include "ckpt/detail/format/strict_json.hpp"
#include "ckpt/detail/os/thread_pool.hpp"
#include "ckpt/detail/state/name_registry.hpp"
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
// A save from a plan already made (the distributed checkpoint's rank files).
CKPT_COMPILED_INSTANTIATE template SaveStats detail::write_content_plan<void>(
    const std::string&, const std::vector<NamedTensor>&, const nlohmann::json&, const SaveOptions&,
    const detail::ContentPlan<void>&, const std::vector<std::size_t>*, detail::DataSync);
// A save against a parent (what a program that assigns IncrementalOptions::parent calls).
CKPT_COMPILED_INSTANTIATE template SaveStats detail::save_against_parent<void>(const detail::SaveRequest&);
// Reading: the header, the tensors' bytes, their checks.
CKPT_COMPILED_INSTANTIATE template Reader::Reader<void>(const std::string&, ReadOptions);
CKPT_COMPILED_INSTANTIATE template Tensor Reader::tensor<void>(std::string_view) const;
CKPT_COMPILED_INSTANTIATE template void Reader::read_into<void>(std::string_view, void*, std::uint64_t) const;
CKPT_COMPILED_INSTANTIATE template void Reader::read_range<void>(std::string_view, std::uint64_t, std::uint64_t,
                                                                 void*) const;
CKPT_COMPILED_INSTANTIATE template void Reader::read_ranges<void>(std::string_view, const std::vector<ByteRangeCopy>&,
                                                                  void*) const;
CKPT_COMPILED_INSTANTIATE template void Reader::verify<void>() const;
// Loading a state: matching the file's names with describe()'s.
CKPT_COMPILED_INSTANTIATE template LoadingArchive::LoadingArchive<void>(const Reader&);
CKPT_COMPILED_INSTANTIATE template LoadReport LoadingArchive::finish<void>(bool);
// Codecs by name (a save's policy and a read's stored specs).
CKPT_COMPILED_INSTANTIATE template std::shared_ptr<const Codec> CodecRegistry::make<void>(const std::string&) const;

namespace detail {
CKPT_COMPILED_INSTANTIATE template class HeaderParser<nlohmann::json>;
CKPT_COMPILED_INSTANTIATE template class NameRegistry<void>;
CKPT_COMPILED_INSTANTIATE template class BlockVerifier<void>;
CKPT_COMPILED_INSTANTIATE template class ThreadPool<void>;
CKPT_COMPILED_INSTANTIATE template std::optional<nlohmann::json> parse_strict_json<nlohmann::json>(std::string_view,
                                                                                                   std::size_t,
                                                                                                   std::size_t,
                                                                                                   std::string&);
}  // namespace detail

}  // namespace ckpt

#endif
