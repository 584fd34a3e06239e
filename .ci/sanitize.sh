#!/usr/bin/env bash
# .ci/sanitize.sh: build pylstm._core with gcc's AddressSanitizer and UndefinedBehaviorSanitizer, run the
# kernel and binding tests (and a reduced fuzz profile) on it, and fail on any sanitizer report.
#
#   bash .ci/sanitize.sh            # from .ci/run, or by hand in a venv with numpy, pytest and hypothesis
#
# The build is the project's own (scikit-build-core on CMakeLists.txt, PYLSTM_SANITIZE=ON), installed with
# --target into a throwaway folder. The tests run in a throwaway venv that sees the current one's packages
# (numpy, pytest, hypothesis) through a .pth file but not its pylstm: an editable install's import hook
# would win over PYTHONPATH, and the current venv is left untouched. libasan must be the first library
# loaded, so it is preloaded into python; leak detection is off because CPython keeps memory until exit by
# design. Every report aborts the test process (halt_on_error), and the log is searched for reports as
# well, in case one is swallowed.
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$(pwd)"
start=$(date +%s)

work="$(mktemp -d)"
if [[ -z "${SANITIZE_KEEP:-}" ]]; then  # SANITIZE_KEEP=1: leave the build and the log for a closer look
  trap 'rm -rf "$work"' EXIT
fi

export CC=gcc CXX=g++  # the sanitizer runtime below is gcc's
libasan="$(gcc -print-file-name=libasan.so)"
if [[ ! -e "$libasan" ]]; then
  echo "sanitize: gcc has no libasan.so here ($libasan); install gcc's sanitizer runtime" >&2
  exit 1
fi

# Build. Without build isolation when the build requirements are already installed (fast, offline);
# otherwise pip fetches them as `pip install .` does.
isolation=()
if python -c "import scikit_build_core, pybind11" 2>/dev/null; then
  isolation=(--no-build-isolation)
fi
echo "sanitize: building with -fsanitize=address,undefined into $work/site"
python -m pip install -q . --no-deps --target "$work/site" "${isolation[@]}" \
  -Ccmake.define.PYLSTM_SANITIZE=ON -Cinstall.strip=false -Cbuild-dir="$work/build"  # symbols for the reports
core="$(ls "$work"/site/pylstm/_core*.so)"
if [[ "$(ldd "$core")" != *libasan* ]]; then  # (not `ldd | grep -q`: with pipefail, grep's early exit fails it)
  echo "sanitize: $core is not linked against libasan: PYLSTM_SANITIZE did not take effect" >&2
  exit 1
fi
built=$(date +%s)

# The test interpreter: a venv on the same base Python, with the current environment's packages appended.
python -m venv --without-pip "$work/venv"
testpy="$work/venv/bin/python"
purelib="$("$testpy" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")"
python -c "import site; print('\n'.join(site.getsitepackages()))" >"$purelib/_sanitize_parent.pth"

export PYTHONPATH="$work/site"
# libstdc++ preloaded with it: otherwise ASan starts before python has loaded libstdc++, cannot intercept
# __cxa_throw, and the binding's first C++ exception (a refused argument) aborts with "CHECK failed".
export LD_PRELOAD="$libasan $(g++ -print-file-name=libstdc++.so.6)"
# malloc_fill_byte=255: every fresh heap block reads as NaN (float32 and float64), so a kernel output or
# workspace element read before it is written shows up in the comparisons with the reference.
export ASAN_OPTIONS="detect_leaks=0:halt_on_error=1:abort_on_error=0:exitcode=86:malloc_fill_byte=255:max_malloc_fill_size=268435456:allocator_may_return_null=1"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:exitcode=87"
export PYLSTM_FUZZ_PROFILE=sanitize
export OPENBLAS_NUM_THREADS=1

# From $work, not the repository root: python -m puts the working folder first on sys.path, and the
# repository's own pylstm/ (no compiled _core) must not be the one imported.
cd "$work"
"$testpy" -c "
import pylstm
where = pylstm.__file__
assert where.startswith('$work/site/'), f'the sanitized build is not the one imported: {where}'
info = pylstm.info()
print(f\"sanitize: testing {where} ({info['compiled_isas']}, openmp={info['openmp']})\")
"

# PyTorch is not instrumented and only serves a comparison test: left out (-k) to keep the run short.
# --capture=sys: pytest leaves file descriptor 2 alone, so a report (written there by the sanitizer
# runtime, which then ends the process) reaches the log instead of a capture file that is never shown.
log="$work/pytest.log"
status=0
"$testpy" -m pytest -q -x -p no:cacheprovider --capture=sys --rootdir="$repo" -c "$repo/pyproject.toml" -k "not torch" \
  "$repo/tests/test_kernels.py" "$repo/tests/test_bindings.py" "$repo/tests/test_output_pool.py" \
  "$repo/tests/test_fuzz_kernels.py" 2>&1 \
  | tee "$log" || status=$?

reports=$(grep -cE "ERROR: AddressSanitizer|AddressSanitizer: CHECK failed|runtime error:|SUMMARY: (Address|UndefinedBehavior)Sanitizer" \
  "$log" || true)
end=$(date +%s)
echo "sanitize: build $((built - start)) s, tests $((end - built)) s, total $((end - start)) s;" \
  "pytest exit $status, sanitizer reports: $reports"
if [[ $status -ne 0 || $reports -ne 0 ]]; then
  echo "sanitize: FAILED" >&2
  exit 1
fi
echo "sanitize: clean"
