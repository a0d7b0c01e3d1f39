-- wrk script for scripts/bench-http.sh: durable bookings at hotel U-0 (set up by
-- innkeep-load --setup --hotel-prefix U --room-types 4), as innkeep-load's booking mix
-- sends them: room type T0–T3, 1–3 nights arriving within the next 690 days (from the day
-- after tomorrow in Asia/Shanghai, the setup's time zone, UTC+8 all year), one guest, and
-- an Idempotency-Key of its own on every request.
--
--   wrk -t2 -c64 -d10s -s scripts/wrk-book.lua http://127.0.0.1:PORT
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
