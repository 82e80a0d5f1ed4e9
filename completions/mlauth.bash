# bash completion for mlauth(1)                              -*- shell-script -*-
# Installed as $(datadir)/bash-completion/completions/mlauth; self-contained,
# so it also works when sourced without the bash-completion package.

_mlauth_commands="login token status logout send config help"
_mlauth_global_opts="-p --profile -c --config -o --option -v --verbose -q --quiet
	--no-color -V --version -h --help"
_mlauth_settings="issuer client_id scope api_base application_name model max_tokens
	min_valid store ca_file timeout retries"

# Profile names: the [group] lines of the config file that mlauth would read
# ($1: the file given with -c/--config on the command line, if any).
_mlauth_profiles()
{
	local file=$1 line re='^[[:space:]]*\[([A-Za-z0-9._-]{1,64})\][[:space:]]*$'

	if [[ -z $file ]]; then
		if [[ -n ${MLAUTH_CONFIG-} ]]; then
			file=$MLAUTH_CONFIG
		elif [[ ${XDG_CONFIG_HOME-} == /* ]]; then
			file=$XDG_CONFIG_HOME/mlauth/config
		else
			file=$HOME/.config/mlauth/config
		fi
	fi
	[[ $file == "~"/* ]] && file=$HOME/${file#"~"/}
	echo default
	[[ -r $file ]] || return 0
	while IFS= read -r line || [[ -n $line ]]; do
		[[ $line =~ $re && ${BASH_REMATCH[1]} != default ]] && echo "${BASH_REMATCH[1]}"
	done <"$file"
}

_mlauth()
{
	local -a w=()
	local i join=0 cur prev cmd="" cfg="" nargs=0 word prefix
	local -a cands=()

	# Glue "--format" "=" "json" (split by COMP_WORDBREAKS) back into one word.
	for ((i = 0; i <= COMP_CWORD; i++)); do
		word=${COMP_WORDS[i]-}
		if [[ $word == "=" && ${#w[@]} -gt 0 && $i -gt 1 ]]; then
			w[${#w[@]}-1]+="="
			join=1
		elif ((join)); then
			w[${#w[@]}-1]+=$word
			join=0
		else
			w+=("$word")
		fi
	done
	cur=${w[${#w[@]}-1]}
	prev=""
	((${#w[@]} > 1)) && prev=${w[${#w[@]}-2]}

	# Find the command, skipping the global options and their values.
	for ((i = 1; i < ${#w[@]} - 1; i++)); do
		word=${w[i]}
		if [[ -z $cmd ]]; then
			# Short flags may be bundled: -vc FILE, -qp NAME, -cFILE.
			if [[ $word == --config || $word =~ ^-[vqVh]*c$ ]]; then
				cfg=${w[i + 1]-}
				((i++))
			elif [[ $word == --profile || $word == --option || $word =~ ^-[vqVh]*[po]$ ]]; then
				((i++))
			elif [[ $word == --config=* ]]; then
				cfg=${word#*=}
			elif [[ $word =~ ^-[vqVh]*c(.+)$ ]]; then
				cfg=${BASH_REMATCH[1]}
			elif [[ $word != -* ]]; then
				cmd=$word
			fi
		elif [[ $word != -* ]]; then
			((nargs++))
		fi
	done

	if [[ -z $cmd ]]; then
		case $prev in
		-p | --profile)
			mapfile -t cands < <(compgen -W "$(_mlauth_profiles "$cfg")" -- "$cur") ;;
		-c | --config)
			compopt -o filenames 2>/dev/null
			mapfile -t COMPREPLY < <(compgen -f -- "$cur")
			return 0 ;;
		-o | --option)
			if [[ $cur == store=* ]]; then
				mapfile -t cands < <(compgen -W "store=auto store=secret-service store=file" -- "$cur")
			elif [[ $cur != *=* ]]; then
				compopt -o nospace 2>/dev/null
				mapfile -t cands < <(compgen -S = -W "$_mlauth_settings" -- "$cur")
			fi ;;
		*)
			case $cur in
			--profile=*)
				mapfile -t cands < <(compgen -P --profile= -W "$(_mlauth_profiles "$cfg")" \
				    -- "${cur#--profile=}") ;;
			--config=*)
				compopt -o filenames 2>/dev/null
				mapfile -t cands < <(compgen -P --config= -f -- "${cur#--config=}") ;;
			-*) mapfile -t cands < <(compgen -W "$_mlauth_global_opts" -- "$cur") ;;
			*) mapfile -t cands < <(compgen -W "$_mlauth_commands" -- "$cur") ;;
			esac ;;
		esac
	else
		case $cmd in
		login) [[ $cur == -* ]] &&
			mapfile -t cands < <(compgen -W "--no-browser -f --force -h --help" -- "$cur") ;;
		token)
			if [[ $prev == --format ]]; then
				mapfile -t cands < <(compgen -W "plain header json" -- "$cur")
			elif [[ $cur == --format=* ]]; then
				mapfile -t cands < <(compgen -P --format= -W "plain header json" -- "${cur#--format=}")
			elif [[ $prev == -m || $prev == --min-valid ]]; then
				return 0
			elif [[ $cur == -* ]]; then
				mapfile -t cands < <(compgen -W "-H --header -j --json --format -m --min-valid
				    --no-refresh -h --help" -- "$cur")
			fi ;;
		status) [[ $cur == -* ]] && mapfile -t cands < <(compgen -W "-j --json -h --help" -- "$cur") ;;
		logout) [[ $cur == -* ]] && mapfile -t cands < <(compgen -W "-l --local -h --help" -- "$cur") ;;
		send)
			if [[ $prev == --body ]]; then
				compopt -o filenames 2>/dev/null
				mapfile -t COMPREPLY < <(compgen -f -- "$cur")
				return 0
			elif [[ $cur == --body=* ]]; then
				compopt -o filenames 2>/dev/null
				mapfile -t cands < <(compgen -P --body= -f -- "${cur#--body=}")
			elif [[ $prev == -m || $prev == --model || $prev == --max-tokens ||
			    $prev == -s || $prev == --system || $prev == --temperature ||
			    $prev == --retries ]]; then
				return 0
			elif [[ $cur == -* ]]; then
				mapfile -t cands < <(compgen -W "-m --model --max-tokens -s --system
				    --temperature --stream -j --json --body --retries -h --help" -- "$cur")
			fi ;;
		config)
			if [[ $cur == -* ]]; then
				mapfile -t cands < <(compgen -W "-j --json -h --help" -- "$cur")
			elif ((nargs == 0)); then
				mapfile -t cands < <(compgen -W "$_mlauth_settings" -- "$cur")
			fi ;;
		help) ((nargs == 0)) && mapfile -t cands < <(compgen -W "$_mlauth_commands" -- "$cur") ;;
		esac
	fi

	# Readline replaces only the text after the last '=' when '=' breaks words.
	if [[ $cur == *=* && ${COMP_WORDBREAKS-} == *=* ]]; then
		prefix=${cur%"${cur##*=}"}
		cands=("${cands[@]#"$prefix"}")
	fi
	COMPREPLY=("${cands[@]}")
	return 0
}

complete -F _mlauth mlauth
