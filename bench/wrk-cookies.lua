-- For run.ts --client wrk: each request carries the next session cookie, in turn, from the file
-- named by BENCH_COOKIES, as run.ts does with autocannon. Without the file, wrk sends its plain
-- request (no cookie).
local cookies = {}
local file = os.getenv("BENCH_COOKIES")
if file ~= nil and file ~= "" then
  for line in io.lines(file) do cookies[#cookies + 1] = line end
end
if #cookies > 0 then
  local i = 0
  request = function()
    i = i + 1
    return wrk.format(nil, nil, { ["Cookie"] = cookies[(i - 1) % #cookies + 1] })
  end
end
