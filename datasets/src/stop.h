#pragma once
// Between the readers and the loops that turn a whole corpus into tokens and ids (private to
// the datasets library): each polls the stop check the apps set (set_stop_check in text.h),
// so that a stop signal during a long load is seen within a fraction of a second.
#include <cstddef>

namespace rnnkit::data::detail {

/// Calls the stop check (which may throw) when `i` is a multiple of 2^20.
void poll_stop(size_t i);

}  // namespace rnnkit::data::detail
