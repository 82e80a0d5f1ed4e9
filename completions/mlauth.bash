# bash completion for mlauth(1)                              -*- shell-script -*-
# Installed as $(datadir)/bash-completion/completions/mlauth; self-contained,
# so it also works when sourced without the bash-completion package.

_mlauth_commands="login token status logout send env exec proxy config doctor help version"
_mlauth_global_opts="-p --profile -c --config -o --option -v --verbose -q --quiet
	--no-color -V --version -h --help"
# The global options mlauth also takes after the command (not -V, not inside exec's command).
_mlauth_after_opts="-p --profile -c --config -o --option -v --verbose -q --quiet --no-color"
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

# The value of a global option ($1 the word before, $2 the word under the cursor, $3 the
# config file given so far): fills cands and succeeds; fails when $2 is no such value.
_mlauth_global_value()
{
	local prev=$1 cur=$2 cfg=$3

	case $prev in
	-p | --profile)
		mapfile -t cands < <(compgen -W "$(_mlauth_profiles "$cfg")" -- "$cur") ;;
	-c | --config)
		compopt -o filenames 2>/dev/null
		mapfile -t cands < <(compgen -f -- "$cur") ;;
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
		*) return 1 ;;
		esac ;;
	esac
	return 0
}

# Whether word, an option after command cmd, takes the next word as its value. In a
# short bundle the first letter that takes a value takes the rest of the word, or the next
# word when it is the last (-jm 60, -m60).
_mlauth_takes_value()
{
	local cmd=$1 word=$2 letters=pco k

	case $cmd in
	token | env | exec | proxy) letters+=m ;;
	send) letters+=s ;;
	esac
	if [[ $word == -[!-]* ]]; then
		for ((k = 1; k < ${#word}; k++)); do
			[[ $letters == *"${word:k:1}"* ]] && return $((k != ${#word} - 1))
		done
		return 1
	fi
	case $cmd:$word in
	*:--profile | *:--config | *:--option | \
	token:--min-valid | token:--format | env:--min-valid | env:--shell | exec:--min-valid | \
	proxy:--min-valid | proxy:--port | proxy:--shell | send:--model | send:--max-tokens | \
	send:--system | send:--temperature | send:--body | send:--retries)
		return 0 ;;
	esac
	return 1
}

_mlauth()
{
	local -a w=() widx=()
	local i join=0 cur prev cmd="" cfg="" nargs=0 start=0 word prefix
	local -a cands=()

	# Glue "--format" "=" "json" (split by COMP_WORDBREAKS) back into one word;
	# widx[n] is the index in COMP_WORDS where w[n] begins.
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
			widx+=("$i")
		fi
	done
	cur=${w[${#w[@]}-1]}
	prev=""
	((${#w[@]} > 1)) && prev=${w[${#w[@]}-2]}

	# Find the command and where its operands start (start: the first, or the word after
	# "--"), skipping options and their values. mlauth parses as getopt's "+" does: the
	# global options stand on either side of the command, and all options end at the
	# first operand.
	for ((i = 1; i < ${#w[@]} - 1; i++)); do
		word=${w[i]}
		if ((start)); then
			((nargs++))
			continue
		fi
		# Short flags may be bundled: -vc FILE, -qp NAME, -cFILE.
		if [[ -n $cmd && $word == -- ]]; then
			start=$((i + 1))
		elif [[ $word == --config || $word =~ ^-[vqVh]*c$ ]]; then
			cfg=${w[i + 1]-}
			((i++))
		elif [[ $word == --profile || $word == --option || $word =~ ^-[vqVh]*[po]$ ]]; then
			((i++))
		elif [[ $word == --config=* ]]; then
			cfg=${word#*=}
		elif [[ $word =~ ^-[vqVh]*c(.+)$ ]]; then
			cfg=${BASH_REMATCH[1]}
		elif [[ -n $cmd ]] && _mlauth_takes_value "$cmd" "$word"; then
			((i++))
		elif [[ $word == -* ]]; then
			:
		elif [[ -z $cmd ]]; then
			cmd=$word
		else
			start=$i
			nargs=1
		fi
	done

	if [[ -z $cmd ]]; then
		if _mlauth_global_value "$prev" "$cur" "$cfg"; then
			:
		elif [[ $cur == -* ]]; then
			mapfile -t cands < <(compgen -W "$_mlauth_global_opts" -- "$cur")
		else
			mapfile -t cands < <(compgen -W "$_mlauth_commands" -- "$cur")
		fi
	elif [[ $cmd != exec ]] && ((start)); then
		: # operands only: the message text of send, config's KEY, help's COMMAND
	elif [[ $cmd != exec ]] && _mlauth_global_value "$prev" "$cur" "$cfg"; then
		:
	else
		case $cmd in
		login) [[ $cur == -* ]] &&
			mapfile -t cands < <(compgen -W "--no-browser --qr -f --force -h --help" -- "$cur") ;;
		token)
			if [[ $prev == --format ]]; then
				mapfile -t cands < <(compgen -W "plain header json" -- "$cur")
			elif [[ $cur == --format=* ]]; then
				mapfile -t cands < <(compgen -P --format= -W "plain header json" -- "${cur#--format=}")
			elif _mlauth_takes_value token "$prev"; then
				return 0
			elif [[ $cur == -* ]]; then
				mapfile -t cands < <(compgen -W "-H --header -j --json --format -m --min-valid
				    --no-refresh -h --help" -- "$cur")
			fi ;;
		status) [[ $cur == -* ]] && mapfile -t cands < <(compgen -W "-j --json --verify -h --help" -- "$cur") ;;
		logout) [[ $cur == -* ]] && mapfile -t cands < <(compgen -W "-l --local -h --help" -- "$cur") ;;
		send)
			if [[ $prev == --body ]]; then
				compopt -o filenames 2>/dev/null
				mapfile -t COMPREPLY < <(compgen -f -- "$cur")
				return 0
			elif [[ $cur == --body=* ]]; then
				compopt -o filenames 2>/dev/null
				mapfile -t cands < <(compgen -P --body= -f -- "${cur#--body=}")
			elif _mlauth_takes_value send "$prev"; then
				return 0
			elif [[ $cur == -* ]]; then
				mapfile -t cands < <(compgen -W "--model --max-tokens -s --system
				    --temperature --stream -j --json --body --retries -h --help" -- "$cur")
			fi ;;
		env)
			if [[ $prev == --shell ]]; then
				mapfile -t cands < <(compgen -W "sh fish" -- "$cur")
			elif [[ $cur == --shell=* ]]; then
				mapfile -t cands < <(compgen -P --shell= -W "sh fish" -- "${cur#--shell=}")
			elif _mlauth_takes_value env "$prev"; then
				return 0
			elif [[ $cur == -* ]]; then
				mapfile -t cands < <(compgen -W "--shell -m --min-valid -h --help" -- "$cur")
			fi ;;
		exec)
			# exec's options end at "--" or at the first operand, the command to run.
			if ((start == 0)); then
				if _mlauth_global_value "$prev" "$cur" "$cfg"; then
					:
				elif _mlauth_takes_value exec "$prev"; then
					return 0
				elif [[ $cur == -* ]]; then
					mapfile -t cands < <(compgen -W "--proxy -m --min-valid -h --help --
					    $_mlauth_after_opts" -- "$cur")
				else
					start=$((${#w[@]} - 1))
				fi
			fi
			if ((start == ${#w[@]} - 1)); then
				# The command: anything the shell could run.
				mapfile -t cands < <(compgen -c -- "$cur" | sort -u)
			elif ((start > 0)); then
				# Its arguments: that command's own completion when bash-completion
				# is loaded, else file names.
				if declare -F _command_offset >/dev/null; then
					_command_offset "${widx[start]}"
					return 0
				fi
				compopt -o filenames 2>/dev/null
				mapfile -t cands < <(compgen -f -- "$cur")
			fi ;;
		proxy)
			if [[ $prev == --shell ]]; then
				mapfile -t cands < <(compgen -W "sh fish" -- "$cur")
			elif [[ $cur == --shell=* ]]; then
				mapfile -t cands < <(compgen -P --shell= -W "sh fish" -- "${cur#--shell=}")
			elif _mlauth_takes_value proxy "$prev"; then
				return 0
			elif [[ $cur == -* ]]; then
				mapfile -t cands < <(compgen -W "--port -m --min-valid --env --shell -h
				    --help" -- "$cur")
			fi ;;
		config)
			if [[ $cur == -* ]]; then
				mapfile -t cands < <(compgen -W "-j --json -h --help" -- "$cur")
			elif ((nargs == 0)); then
				mapfile -t cands < <(compgen -W "$_mlauth_settings" -- "$cur")
			fi ;;
		doctor) [[ $cur == -* ]] && mapfile -t cands < <(compgen -W "-j --json -h --help" -- "$cur") ;;
		help) ((nargs == 0)) && mapfile -t cands < <(compgen -W "$_mlauth_commands" -- "$cur") ;;
		version) [[ $cur == -* ]] && mapfile -t cands < <(compgen -W "-h --help" -- "$cur") ;;
		esac
		# Then the global options, which mlauth takes after the command too.
		[[ $cmd != exec && $cur == -* && $cur != *=* ]] &&
			mapfile -t -O "${#cands[@]}" cands < <(compgen -W "$_mlauth_after_opts" -- "$cur")
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
