-- wrk script for `make bench`.  Arguments (after `--`): METHOD PATH TOKEN REPOS [BODY [TYPE]]
--   METHOD  PUT without BODY sends the repo-connection upsert body, cycling over REPOS
--           repositories; otherwise PATH is sent as is, with BODY when one is given.
--   TOKEN   bearer token, or "-" for none.
--   BODY    a fixed body (e.g. POST {"branch":"main"}), "@FILE" for the bytes of FILE (a body
--           too large for an argument: a 1 MiB Worker upload), or "-" / absent for none.
--   TYPE    the body's Content-Type (default application/json).
-- Every response is checked: anything but 200 is counted, and done() prints one
-- machine-readable "BENCH-RESULT" line that bench/wrk.py parses.

local threads = {}
local thread_count = 0

function setup(thread)
   thread:set("tid", thread_count)
   thread_count = thread_count + 1
   table.insert(threads, thread)
end

function init(args)
   local method, path, token, repos = args[1], args[2], args[3], tonumber(args[4])
   local body = args[5] or "-"
   local content_type = args[6] or "application/json"
   if string.sub(body, 1, 1) == "@" then
      local file = assert(io.open(string.sub(body, 2), "rb"))
      body = file:read("*a")
      file:close()
   end
   local headers = {}
   if token ~= "-" then
      headers["Authorization"] = "Bearer " .. token
   end
   reqs = {}
   if method == "PUT" and body == "-" then
      headers["Content-Type"] = "application/json"
      for n = 0, repos - 1 do
         local body = string.format(
            '{"provider_account_id":"41612145","provider_account_name":"octo",'
               .. '"provider_type":"github","repo_id":"%d","repo_name":"repo-%d"}',
            n, n)
         reqs[n + 1] = wrk.format("PUT", path, headers, body)
      end
   elseif body ~= "-" then
      headers["Content-Type"] = content_type
      reqs[1] = wrk.format(method, path, headers, body)
   else
      reqs[1] = wrk.format(method, path, headers)
   end
   -- Threads start at different repositories so they do not upsert the same row in lockstep.
   index = (tid * 4999) % #reqs
   responses = 0
   non200 = 0
   first_bad = ""
end

function request()
   index = index % #reqs + 1
   return reqs[index]
end

function response(status, headers, body)
   responses = responses + 1
   if status ~= 200 then
      non200 = non200 + 1
      if first_bad == "" then
         first_bad = tostring(status) .. " " .. string.sub(body or "", 1, 300)
      end
   end
end

function done(summary, latency, requests)
   local seen, bad, sample = 0, 0, ""
   for _, thread in ipairs(threads) do
      seen = seen + thread:get("responses")
      bad = bad + thread:get("non200")
      local first = thread:get("first_bad")
      if sample == "" and first ~= "" then
         sample = first
      end
   end
   local e = summary.errors
   io.write(string.format(
      "BENCH-RESULT requests=%d duration_us=%d responses=%d non200=%d connect=%d read=%d"
         .. " write=%d status=%d timeout=%d p50_us=%d p99_us=%d\n",
      summary.requests, summary.duration, seen, bad, e.connect, e.read, e.write, e.status,
      e.timeout, latency:percentile(50.0), latency:percentile(99.0)))
   if sample ~= "" then
      io.write("BENCH-FIRST-BAD " .. (string.gsub(sample, "[\r\n]", " ")) .. "\n")
   end
end
