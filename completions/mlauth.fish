# fish completion for mlauth(1); installed as
# $(datadir)/fish/vendor_completions.d/mlauth.fish.

# Whether $argv[2], an option after command $argv[1], takes the next word as its value.
# In a short bundle the first letter that takes a value takes the rest of the word, or
# the next word when it is the last (-jm 60, -m60).
function __mlauth_takes_value
    set -l word $argv[2]
    set -l letters p c o
    switch $argv[1]
        case token env exec proxy
            set -a letters m
        case send
            set -a letters s
    end
    if string match -qr -- '^-[^-]' $word
        set -l chars (string split '' -- (string sub -s 2 -- $word))
        for k in (seq (count $chars))
            if contains -- $chars[$k] $letters
                test $k -eq (count $chars)
                return
            end
        end
        return 1
    end
    contains -- $word --profile --config --option; and return 0
    contains -- "$argv[1]:$word" token:--min-valid token:--format env:--min-valid env:--shell \
        exec:--min-valid proxy:--min-valid proxy:--port proxy:--shell send:--model \
        send:--max-tokens send:--system send:--temperature send:--body send:--retries
end

# The words typed so far as mlauth parses them (getopt's "+"): the global options stand on
# either side of the command, an option's value is no operand, and all options end at the
# first operand or at "--".  Prints the command, then "options" while options may still
# come or "operands" once they have ended, then the operands; fails before the command.
function __mlauth_parse
    set -l tokens (commandline -opc)
    set -e tokens[1]
    set -l cmd
    set -l skip 0
    set -l ended 0
    set -l operands
    for t in $tokens
        if test $skip -eq 1
            set skip 0
        else if test $ended -eq 1
            set -a operands $t
        else if test -n "$cmd"; and test "$t" = --
            set ended 1
        else if __mlauth_takes_value "$cmd" $t
            set skip 1
        else if string match -q -- '-*' $t
        else if test -z "$cmd"
            set cmd $t
        else
            set ended 1
            set -a operands $t
        end
    end
    test -n "$cmd"; or return 1
    printf '%s\n' $cmd
    test $ended -eq 1; and echo operands; or echo options
    set -q operands[1]; and printf '%s\n' $operands
    return 0
end

function __mlauth_needs_command
    not __mlauth_parse >/dev/null
end

# The command is $argv[1] and its options have not ended (no operand, no "--" yet).
function __mlauth_using
    set -l p (__mlauth_parse); or return 1
    test "$p[1]" = "$argv[1]"; and test "$p[2]" = options
end

# The command is $argv[1], whatever follows it.
function __mlauth_is
    set -l p (__mlauth_parse); or return 1
    test "$p[1]" = "$argv[1]"
end

# A command is given and its options have not ended.
function __mlauth_in_options
    set -l p (__mlauth_parse); or return 1
    test "$p[2]" = options
end

# "default" and the [group] lines of the config file mlauth would read.
function __mlauth_profiles
    set -l file
    set -l tokens (commandline -opc)
    for i in (seq (count $tokens))
        switch $tokens[$i]
            case -c --config
                set file $tokens[(math $i + 1)]
            case '--config=*'
                set file (string replace -- '--config=' '' $tokens[$i])
        end
    end
    if test -z "$file"
        if set -q MLAUTH_CONFIG; and test -n "$MLAUTH_CONFIG"
            set file $MLAUTH_CONFIG
        else if string match -q '/*' -- "$XDG_CONFIG_HOME"
            set file $XDG_CONFIG_HOME/mlauth/config
        else
            set file $HOME/.config/mlauth/config
        end
    end
    set file (string replace -r '^~/' "$HOME/" -- $file)
    # Each profile with what tells it apart: its issuer, where its group sets one.
    set -l names default
    set -l descs 'Profile default'
    set -l cur
    if test -r "$file"
        while read -l line
            set -l group (string match -r -g '^\s*\[([A-Za-z0-9._-]{1,64})\]\s*$' -- $line)
            if test -n "$group"
                set cur $group
                contains -- $cur $names; or begin
                    set -a names $cur
                    set -a descs "Profile $cur"
                end
            else if test -n "$cur"
                set -l iss (string match -r -g '^\s*issuer\s*=\s*(\S+)' -- $line)
                test -n "$iss"; and set descs[(contains -i -- $cur $names)] "Profile $cur: $iss"
            end
        end <$file
    end
    for i in (seq (count $names))
        printf '%s\t%s\n' $names[$i] $descs[$i]
    end
end

# exec: the command to run and its arguments so far.  Fails while the command line is
# not yet past exec's options, or the command is not exec.
function __mlauth_exec_words
    set -l p (__mlauth_parse); or return 1
    test "$p[1]" = exec; and test "$p[2]" = operands; or return 1
    set -q p[3]; and printf '%s\n' $p[3..-1]
    return 0
end

# Where a global option may stand: mlauth takes them before and after the command, up to
# its first operand (so never among the words of the command that exec runs).
function __mlauth_globals_ok
    __mlauth_needs_command; or __mlauth_in_options
end

# exec: complete the command to run, then its arguments as fish completes that command.
function __mlauth_exec_complete
    set -l cur (commandline -ct)
    set -l words (__mlauth_exec_words)
    or begin
        # Still among exec's options: an option is being typed, or its value.
        string match -q -- '-*' $cur; and return 0
        __mlauth_takes_value exec (commandline -opc)[-1]; and return 0
    end
    complete -C (string join ' ' -- (string escape -- $words) $cur)
end

set -g __mlauth_settings issuer client_id scope api_base application_name model \
    max_tokens min_valid store ca_file timeout retries

# -o KEY=VALUE: keys first, then the values of store.
function __mlauth_option_values
    set -l cur (commandline -ct | string replace -r '^(-o|--option=)' '')
    switch $cur
        case 'store=*'
            printf 'store=%s\n' auto secret-service file
        case '*=*'
            return 0
        case '*'
            printf '%s=\n' $__mlauth_settings
    end
end

complete -c mlauth -f

# Global options: before the command, and after it too (mlauth status -q, token -p work).
complete -c mlauth -n __mlauth_globals_ok -s p -l profile -x -a '(__mlauth_profiles)' -d 'Use the settings and session of a profile'
complete -c mlauth -n __mlauth_globals_ok -s c -l config -r -F -d 'Read settings from a file'
complete -c mlauth -n __mlauth_globals_ok -s o -l option -x -a '(__mlauth_option_values)' -d 'Set KEY=VALUE for this run'
complete -c mlauth -n __mlauth_globals_ok -s v -l verbose -d 'Say more; twice traces HTTP, secrets redacted'
complete -c mlauth -n __mlauth_globals_ok -s q -l quiet -d 'Print only results and errors'
complete -c mlauth -n __mlauth_globals_ok -l no-color -d 'No colour'
complete -c mlauth -n __mlauth_needs_command -s V -l version -d 'Print the version'
complete -c mlauth -n __mlauth_needs_command -s h -l help -d 'Print the usage'

# Commands.
complete -c mlauth -n __mlauth_needs_command -a login -d 'Log in with the device flow'
complete -c mlauth -n __mlauth_needs_command -a token -d 'Print a valid access token'
complete -c mlauth -n __mlauth_needs_command -a status -d 'Who is logged in, until when'
complete -c mlauth -n __mlauth_needs_command -a logout -d 'Revoke the session and delete the tokens'
complete -c mlauth -n __mlauth_needs_command -a send -d 'Send a message to the messages API'
complete -c mlauth -n __mlauth_needs_command -a env -d 'Print shell commands that export the API base and a token'
complete -c mlauth -n __mlauth_needs_command -a exec -d 'Run a command with the API base and a token in its environment'
complete -c mlauth -n __mlauth_needs_command -a proxy -d 'Serve the messages API on 127.0.0.1 with fresh tokens'
complete -c mlauth -n __mlauth_needs_command -a config -d 'Show the effective settings'
complete -c mlauth -n __mlauth_needs_command -a doctor -d 'Check the set-up and say what to fix'
complete -c mlauth -n __mlauth_needs_command -a help -d 'Show the commands, or one command\'s help'
complete -c mlauth -n __mlauth_needs_command -a version -d 'Print the version'

# login
complete -c mlauth -n '__mlauth_using login' -l no-browser -d 'Never open a browser'
complete -c mlauth -n '__mlauth_using login' -l qr -d 'Also draw the link as a QR code'
complete -c mlauth -n '__mlauth_using login' -s f -l force -d 'Log in again even when the session works'

# token
complete -c mlauth -n '__mlauth_using token' -s H -l header -d 'Print "Authorization: Bearer TOKEN"'
complete -c mlauth -n '__mlauth_using token' -s j -l json -d 'Print the token and its expiry as JSON'
complete -c mlauth -n '__mlauth_using token' -l format -x -a 'plain header json' -d 'Output format'
complete -c mlauth -n '__mlauth_using token' -s m -l min-valid -x -d 'Seconds the token must stay valid'
complete -c mlauth -n '__mlauth_using token' -l no-refresh -d 'Never use the network; exit 3 when stale'

# send (options before the message text, which ends them)
complete -c mlauth -n '__mlauth_using send' -l model -x -d 'The model to ask for'
complete -c mlauth -n '__mlauth_using send' -l max-tokens -x -d 'The reply\'s length limit in tokens'
complete -c mlauth -n '__mlauth_using send' -s s -l system -x -d 'A system prompt'
complete -c mlauth -n '__mlauth_using send' -l temperature -x -d 'Sampling temperature, 0 to 2'
complete -c mlauth -n '__mlauth_using send' -l stream -d 'Print the reply as it is generated'
complete -c mlauth -n '__mlauth_using send' -s j -l json -d 'Print the raw response body (raw events with --stream)'
complete -c mlauth -n '__mlauth_using send' -l body -r -F -d 'Send FILE (- for stdin) as the request body, as is'
complete -c mlauth -n '__mlauth_using send' -l retries -x -d 'Retries after 429/502/503/504/529 or a network error'

# env
complete -c mlauth -n '__mlauth_using env' -l shell -x -a 'sh fish' -d 'The syntax to print'
complete -c mlauth -n '__mlauth_using env' -s m -l min-valid -x -d 'Seconds the token must stay valid'

# exec: its options until "--" or the command; then the command and its arguments.
complete -c mlauth -n '__mlauth_using exec' -s m -l min-valid -x -d 'Seconds the token must stay valid when the command starts'
complete -c mlauth -n '__mlauth_using exec' -l proxy -d 'Run the command behind its own mlauth proxy'
complete -c mlauth -n '__mlauth_is exec' -a '(__mlauth_exec_complete)'

# proxy
complete -c mlauth -n '__mlauth_using proxy' -l port -x -d 'Listen on this port of 127.0.0.1'
complete -c mlauth -n '__mlauth_using proxy' -s m -l min-valid -x -d 'Seconds a forwarded token must stay valid'
complete -c mlauth -n '__mlauth_using proxy' -l env -d 'Print export lines for the running proxy'
complete -c mlauth -n '__mlauth_using proxy' -l shell -x -a 'sh fish' -d 'With --env: the syntax to print'

# doctor
complete -c mlauth -n '__mlauth_using doctor' -s j -l json -d 'Print the report as JSON'

# status, logout, config, help
complete -c mlauth -n '__mlauth_using status' -s j -l json -d 'Print as JSON'
complete -c mlauth -n '__mlauth_using status' -l verify -d 'Check the access token against the provider keys'
complete -c mlauth -n '__mlauth_using logout' -s l -l local -d 'Only delete the stored tokens'
complete -c mlauth -n '__mlauth_using config' -s j -l json -d 'Print all settings as JSON'
complete -c mlauth -n '__mlauth_using config' -a "$__mlauth_settings" -d Setting
complete -c mlauth -n '__mlauth_using help' -a 'login token status logout send env exec proxy config doctor help version' -d Command

# Every command takes --help, among its options.
complete -c mlauth -n __mlauth_in_options -s h -l help -d 'Show the command\'s help'
