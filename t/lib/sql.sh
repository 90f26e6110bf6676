# sql.sh - the test database from HERALD_MYSQL_URL for bash tests (sourced after tap.sh)
# sql_init DIR [DB]  writes DIR/my.cnf for the URL's credentials (DB: the URL's database)
# sql "SQL"          runs SQL there, printing rows tab-separated without headers
# need_ctl           the runner's database and a built heraldctl in $ctl must be there
sql_init() {
	local u=${HERALD_MYSQL_URL#mysql://} creds hostpart hp
	creds=${u%@*} hostpart=${u##*@}
	hp=${hostpart%%/*}
	_sql_db=${2:-${hostpart#*/}}
	_sql_cnf=$1/my.cnf
	_sql_client=$(command -v mariadb || command -v mysql) || bail "no mariadb/mysql client"
	cat > "$_sql_cnf" <<EOC
[client]
user=${creds%%:*}
password=${creds#*:}
host=${hp%:*}
port=${hp##*:}
protocol=TCP
EOC
	[ "${hp%:*}" = localhost ] && sed -i 's/^host=.*/host=127.0.0.1/' "$_sql_cnf"
	return 0
}
sql() { "$_sql_client" --defaults-file="$_sql_cnf" -N -B -e "$1" "$_sql_db"; }
need_ctl() {
	[ -n "${HERALD_MYSQL_URL:-}" ] || bail "no HERALD_MYSQL_URL: run through t/run"
	ctl="$HERALD_BUILDDIR/heraldctl"
	[ -x "$ctl" ] || bail "$ctl not built"
	export HERALD_SQL_DIR=${HERALD_SQL_DIR:-$HERALD_SRCDIR/sql}
}
