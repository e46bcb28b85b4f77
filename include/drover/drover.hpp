// drover: the whole public API in one include.
#pragma once

#include "drover/process/process.hpp"
#include "drover/spawn/error.hpp"
#include "drover/spawn/exit_status.hpp"
#include "drover/spawn/launch.hpp"
#include "drover/spawn/namespaces.hpp"
#include "drover/spawn/spawn_error.hpp"
#include "drover/spawn/spawn_spec.hpp"
#include "drover/spawn/timings.hpp"
#include "drover/spawn/warm.hpp"
#include "drover/sys/syscalls.hpp"
