# Turns `pip install -v` output into progress: every line goes to the log file; on stderr only pip's
# milestones and the compile steps of llama.cpp (CMake/Ninja "[ 12/345]" or Make "[ 45%]" lines), as one
# line redrawn in place on a terminal, or a line per 10 % in a log. Used by scripts/install.sh:
#   pip install -v ... 2>&1 | awk -v logfile=FILE -v tty=0|1 -f scripts/install-progress.awk
{
    print > logfile
    fflush(logfile)
}

/^[ \t]*\[ *[0-9]+\/[0-9]+\] / {
    match($0, /\[ *[0-9]+\/[0-9]+\]/)
    step = substr($0, RSTART + 1, RLENGTH - 2)
    gsub(/ /, "", step)
    split(step, parts, "/")
    report(int(100 * parts[1] / parts[2]), step)
    next
}

/^[ \t]*\[ *[0-9]+%\] / {
    match($0, /\[ *[0-9]+%\]/)
    percent = substr($0, RSTART + 1, RLENGTH - 3) + 0
    report(percent, percent "%")
    next
}

/^[ \t]*(Collecting |Obtaining |Building wheels? for|Building editable for|Created wheel for|Successfully |Installing collected packages|Requirement already satisfied: llama-cpp-python|ERROR|error:|CMake Error|llama.cpp GPU offload)/ {
    finish_line()
    print > "/dev/stderr"
    fflush("/dev/stderr")
}

function report(percent, label) {
    if (tty) {
        printf "\r  compiling llama.cpp: %s (%d%%)   ", label, percent > "/dev/stderr"
        drawn = 1
    } else if (percent >= shown + 10 || !started) {
        printf "  compiling llama.cpp: %s (%d%%)\n", label, percent > "/dev/stderr"
        shown = percent - percent % 10
        started = 1
    }
    fflush("/dev/stderr")
}

function finish_line() {
    if (drawn) {
        printf "\n" > "/dev/stderr"
        drawn = 0
    }
}

END {
    finish_line()
}
