-- wrk script for scripts/bench-http.sh: durable bookings at hotel U-0 (set up by
-- innkeep-load --setup --hotel-prefix U --room-types 4), as innkeep-load's booking mix
-- sends them: room type T0–T3, 1–3 nights arriving within the next 690 days (from the day
-- after tomorrow in Asia/Shanghai, the setup's time zone, UTC+8 all year), one guest, and
-- an Idempotency-Key of its own on every request.
--
--   wrk -t2 -c64 -d10s -s scripts/wrk-book.lua http://127.0.0.1:PORT
--   wrk -t2 -c2000 -d10s -s scripts/wrk-book.lua http://127.0.0.1:PORT -- honor-retry-after
--
-- With `honor-retry-after`, each 503 delays one later request of the same wrk thread by its
-- Retry-After (wrk asks for a delay per request, not per connection, so the wait may fall
-- on another of the thread's connections: the count of waits is right, not their places).
local threads = 0
local sent = 0

function setup(thread)
  thread:set("tid", threads)
  threads = threads + 1
end

function init(args)
  math.randomseed(os.time() * 31 + tid)
  -- Seconds at the start of a day two days ahead in the hotel's zone.
  first_day = os.time() + 8 * 3600 + 2 * 86400
  if args[1] == "honor-retry-after" then
    -- Waits owed, in milliseconds, oldest first.
    local owed = {}
    response = function(status, headers, body)
      if status == 503 then
        local secs = tonumber(headers["Retry-After"] or headers["retry-after"] or "1") or 1
        table.insert(owed, secs * 1000)
      end
    end
    delay = function()
      return table.remove(owed, 1) or 0
    end
  end
end

local function day(offset)
  return os.date("!%Y-%m-%d", first_day + offset * 86400)
end

function request()
  sent = sent + 1
  local start = math.random(0, 690)
  local body = '{"room_type":"T' .. math.random(0, 3) .. '","arrival":"' .. day(start) ..
    '","departure":"' .. day(start + math.random(1, 3)) .. '","guests":1,' ..
    '"guest":{"name":"Load Guest","phone":"+86 138 0000 0000","email":"load@example.com"}}'
  return wrk.format("POST", "/v1/hotels/U-0/reservations", {
    ["content-type"] = "application/json",
    ["idempotency-key"] = "wrk-" .. tid .. "-" .. sent,
  }, body)
end

-- The admitted answers' p99, taking every refusal (any answer not 2xx) as faster than the
-- admitted tail (a 503 `overloaded` is answered at once): with a fraction f of answers
-- admitted, their slowest 1 % are the slowest f % of all answers.
function done(summary, latency, requests)
  local answered = summary.requests
  if answered == 0 then return end
  local admitted = (answered - summary.errors.status) / answered
  io.write(string.format("Admitted p99: %.0f us (refusals: %d of %d answers)\n",
    latency:percentile(100 - admitted), summary.errors.status, answered))
end

