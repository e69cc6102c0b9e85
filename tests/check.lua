-- tests/check.lua: check() and test() for the Lua unit programs, as
-- tests/check.h is for the C ones. check(cond, what) counts a check, or
-- prints "FAIL what (file:line)" and goes on; test(name, fn) runs fn
-- protected (an error is one failed check) and prints "TEST PASSED FAILED
-- name" (its checks); done(program) prints "program: N passed, N failed
-- (N checks)", counting tests, and returns the exit status. A program
-- loads it from its own directory:
--   local unit = dofile((arg[0]:match("^(.*/)") or "") .. "check.lua")
local M = {}
local passed, failed = 0, 0 -- checks of the current test
local tests_passed, tests_failed, checks = 0, 0, 0

-- file:line of the first caller outside this file
local function caller()
  for file, line in debug.traceback("", 2):gmatch("([%w_.-]+%.lua):(%d+):") do
    if file ~= "check.lua" then return file .. ":" .. line end
  end
  return "?"
end

function M.check(cond, what)
  if cond then
    passed = passed + 1
  else
    failed = failed + 1
    print("FAIL " .. what .. " (" .. caller() .. ")")
  end
end

function M.test(name, fn)
  passed, failed = 0, 0
  local ok, err = xpcall(fn, debug.traceback)
  M.check(ok, name .. ": " .. tostring(err))
  print(string.format("TEST %d %d %s", passed, failed, name))
  checks = checks + passed + failed
  if failed == 0 then
    tests_passed = tests_passed + 1
  else
    tests_failed = tests_failed + 1
  end
end

function M.done(program)
  print(string.format("%s: %d passed, %d failed (%d checks)", program, tests_passed,
                      tests_failed, checks))
  return tests_failed == 0 and 0 or 1
end

return M
