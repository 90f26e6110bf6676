# tap.sh - TAP output for the bash integration tests (sourced)
# plan N; ok COND_STATUS DESC; is GOT WANT DESC; like GOT REGEX DESC; done_testing
# tlimit N - N times $HERALD_T_TIMEOUT (a whole factor, default 1): the waiting limits of the
# helpers, longer for slow runs (scripts/valgrind-suite.sh sets 4)
tlimit() { echo $(($1 * ${HERALD_T_TIMEOUT:-1})); }
_tap_n=0 _tap_fail=0
plan() { echo "1..$1"; }
# ok - pass when the previous command's status ($1) is 0
ok() {
	_tap_n=$((_tap_n + 1))
	if [ "$1" -eq 0 ]; then echo "ok $_tap_n - $2"; else echo "not ok $_tap_n - $2"; _tap_fail=$((_tap_fail + 1)); fi
}
is() {
	_tap_n=$((_tap_n + 1))
	if [ "$1" == "$2" ]; then echo "ok $_tap_n - $3"
	else echo "not ok $_tap_n - $3"; printf '#   got:  %s\n#   want: %s\n' "$1" "$2"; _tap_fail=$((_tap_fail + 1)); fi
}
like() {
	_tap_n=$((_tap_n + 1))
	if [[ $1 =~ $2 ]]; then echo "ok $_tap_n - $3"
	else echo "not ok $_tap_n - $3"; printf '#   got:  %s\n#   want: /%s/\n' "$1" "$2"; _tap_fail=$((_tap_fail + 1)); fi
}
bail() { echo "Bail out! $*"; exit 1; }
# need_stack - the runner's stack must be there: a missing server is a failure, not a skip
need_stack() {
	[ -n "${HERALD_AMQP_URL:-}" ] && [ -n "${HERALD_MYSQL_URL:-}" ] || bail "no stack: run through t/run"
}
done_testing() { [ "$_tap_fail" -eq 0 ]; }
