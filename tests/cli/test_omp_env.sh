# The OpenMP wait policy (docs/cli.md, Environment): the long-running subcommands get
# OMP_WAIT_POLICY=PASSIVE GOMP_SPINCOUNT=3000 before libgomp initialises, and libgomp
# initialises once; where CMake found that this libgomp reads them through getenv
# (OMP_ENV_BY_GETENV=1), without any restart (LibTorch's libraries loaded once, the real
# environment untouched); query and info are left alone; a user's setting is kept.
# libgomp itself reports what it read: OMP_DISPLAY_ENV=verbose prints its settings when
# it initialises.
source "$(dirname "$0")/lib.sh"
unset OMP_WAIT_POLICY GOMP_SPINCOUNT

# omp_report SUBCOMMAND [ENV...]: libgomp's display and imgsearch's -v line in $WORK/err.
omp_report() {
  local sub=$1; shift
  env "$@" OMP_DISPLAY_ENV=verbose "$IMGSEARCH" -v "$sub" -i "$WORK/none.index" >"$WORK/out" 2>"$WORK/err" || true
}
initialisations() { grep -c "OPENMP DISPLAY ENVIRONMENT BEGIN" "$WORK/err" || true; }

for sub in extract index eval serve dedup learn; do
  omp_report "$sub"
  [ "$(initialisations)" = 1 ] || { cat "$WORK/err"; fail "$sub: libgomp initialised $(initialisations) times, expected once"; }
  expect_in "$WORK/err" "GOMP_SPINCOUNT = '3000'"
done
# The process itself sees the variables (and -v says so, and how they were given).
omp_report eval
expect_in "$WORK/err" "imgsearch: OpenMP: OMP_WAIT_POLICY=PASSIVE GOMP_SPINCOUNT=3000"
if [ "${OMP_ENV_BY_GETENV:-0}" = 1 ]; then
  expect_in "$WORK/err" "(given to libgomp at start-up, no restart)"
else
  expect_in "$WORK/err" "(from the environment)"
fi

# query and info keep libgomp's defaults (spinning: a cold query must start fast).
for sub in query info; do
  omp_report "$sub"
  [ "$(initialisations)" = 1 ] || { cat "$WORK/err"; fail "$sub: libgomp initialised $(initialisations) times"; }
  expect_not_in "$WORK/err" "GOMP_SPINCOUNT = '3000'"
done

# A policy or spin count the user set is kept as it is, and nothing is added.
omp_report index OMP_WAIT_POLICY=ACTIVE
[ "$(initialisations)" = 1 ] || fail "index: restarted although the user set OMP_WAIT_POLICY"
expect_in "$WORK/err" "OMP_WAIT_POLICY = 'ACTIVE'"
expect_in "$WORK/err" "imgsearch: OpenMP: OMP_WAIT_POLICY=ACTIVE GOMP_SPINCOUNT=unset"
omp_report extract GOMP_SPINCOUNT=10
expect_in "$WORK/err" "GOMP_SPINCOUNT = '10'"
expect_not_in "$WORK/err" "OMP_WAIT_POLICY=PASSIVE"
echo "libgomp initialised once with the passive policy for the long-running subcommands"
