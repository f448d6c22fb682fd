# Warnings are set per target, never globally, so that a project embedding
# coronet keeps its own flags.
function(coronet_warnings target)
  if(MSVC)
    target_compile_options(${target} PRIVATE /W4)
  else()
    target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic)
  endif()
endfunction()
