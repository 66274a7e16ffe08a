# bash completion for imgsearch. Subcommands, options and option values are read from
# imgsearch's own --help output, so completion never drifts from the binary.
_imgsearch_help() {  # cached per command line prefix for the session
  local key="$*"
  if [[ -z ${_imgsearch_help_cache[$key]+x} ]]; then
    _imgsearch_help_cache[$key]=$("$@" --help 2>/dev/null)
  fi
  printf '%s\n' "${_imgsearch_help_cache[$key]}"
}

_imgsearch() {
  local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}
  local cmd=${COMP_WORDS[0]} sub="" i
  declare -gA _imgsearch_help_cache 2>/dev/null || true
  # The top-level options are all flags, so the first word without a dash is the subcommand.
  for ((i = 1; i < COMP_CWORD; i++)); do
    if [[ ${COMP_WORDS[i]} != -* ]]; then sub=${COMP_WORDS[i]}; break; fi
  done
  local help
  if [[ -z $sub ]]; then
    help=$(_imgsearch_help "$cmd")
    if [[ $cur == -* ]]; then
      COMPREPLY=($(compgen -W "$(sed -n 's/^  \(-[^ ]*\).*/\1/p' <<<"$help" | tr ',' ' ')" -- "$cur"))
    else
      COMPREPLY=($(compgen -W "$(sed -n '/^Subcommands:/,$ s/^  \([a-z][a-z-]*\) .*/\1/p' <<<"$help")" -- "$cur"))
    fi
    return
  fi
  help=$(_imgsearch_help "$cmd" "$sub")
  # The value of an option: its choices when --help lists them ({a,b,c}), else file names.
  if [[ $prev == -* ]]; then
    local line
    line=$(grep -E "^  (-[A-Za-z],)?${prev}( |,|$)|^  -[A-Za-z],${prev}( |$)" <<<"$help" | head -1)
    if [[ -n $line && $line =~ \{([^}]*)\} ]]; then
      COMPREPLY=($(compgen -W "${BASH_REMATCH[1]//,/ }" -- "$cur"))
      return
    fi
    if [[ -n $line && $line =~ ^\ \ [^\ ]+\ [A-Z] ]]; then
      compopt -o filenames 2>/dev/null
      COMPREPLY=($(compgen -f -- "$cur"))
      return
    fi
  fi
  if [[ $cur == -* ]]; then
    COMPREPLY=($(compgen -W "$(sed -n 's/^  \(-[^ ]*\).*/\1/p' <<<"$help" | tr ',' ' ')" -- "$cur"))
  else
    compopt -o filenames 2>/dev/null
    COMPREPLY=($(compgen -f -- "$cur"))
  fi
}
complete -F _imgsearch imgsearch
