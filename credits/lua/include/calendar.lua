-- calendar: UTC calendar arithmetic on Unix ms, for allowance periods and limit
-- windows. Integer-only (Howard Hinnant's days_from_civil / civil_from_days);
-- credits/plans/calendar.py is its twin, and the tests hold the two together.
--- @include "context"
local DAY_MS = 86400000
local HOUR_MS = 3600000

local function floor_div(a, b)
  return math.floor(a / b)
end

-- Days since 1970-01-01 of a proleptic Gregorian date.
local function days_from_civil(y, m, d)
  if m <= 2 then
    y = y - 1
  end
  local era = floor_div(y, 400)
  local yoe = y - era * 400
  local mp = (m + 9) % 12
  local doy = floor_div(153 * mp + 2, 5) + d - 1
  local doe = yoe * 365 + floor_div(yoe, 4) - floor_div(yoe, 100) + doy
  return era * 146097 + doe - 719468
end

local function civil_from_days(z)
  z = z + 719468
  local era = floor_div(z, 146097)
  local doe = z - era * 146097
  local yoe = floor_div(doe - floor_div(doe, 1460) + floor_div(doe, 36524) - floor_div(doe, 146096), 365)
  local y = yoe + era * 400
  local doy = doe - (365 * yoe + floor_div(yoe, 4) - floor_div(yoe, 100))
  local mp = floor_div(5 * doy + 2, 153)
  local d = doy - floor_div(153 * mp + 2, 5) + 1
  local m = mp < 10 and mp + 3 or mp - 9
  if m <= 2 then
    y = y + 1
  end
  return y, m, d
end

local function days_in_month(y, m)
  if m == 12 then
    return 31
  end
  return days_from_civil(y, m + 1, 1) - days_from_civil(y, m, 1)
end

-- `anchor` moved on by `months` calendar months, its day clamped to the month's
-- last (an anchor on the 31st gives the 30th, or Feb 28/29), its time of day kept.
local function add_months(anchor, months)
  local days = floor_div(anchor, DAY_MS)
  local time_of_day = anchor - days * DAY_MS
  local y, m, d = civil_from_days(days)
  local index = y * 12 + (m - 1) + months
  local ny, nm = floor_div(index, 12), index % 12 + 1
  local nd = math.min(d, days_in_month(ny, nm))
  return days_from_civil(ny, nm, nd) * DAY_MS + time_of_day
end

-- The calendar window ("hour", "day", "week": ISO, from Monday 00:00, "month")
-- that holds `ms`, as start, end.
local function window_of(every, ms)
  if every == 'hour' then
    local start = floor_div(ms, HOUR_MS) * HOUR_MS
    return start, start + HOUR_MS
  end
  local days = floor_div(ms, DAY_MS)
  if every == 'day' then
    return days * DAY_MS, (days + 1) * DAY_MS
  end
  if every == 'week' then
    local monday = days - (days + 3) % 7  -- 1970-01-01 was a Thursday
    return monday * DAY_MS, (monday + 7) * DAY_MS
  end
  local y, m = civil_from_days(days)
  local start = days_from_civil(y, m, 1) * DAY_MS
  return start, add_months(start, 1)
end

-- The period of an allowance repeating `every` ("day", "week", "month", "year")
-- from `anchor` that holds `ms`, as start, end; nil when ms is before the anchor.
local function period_of(every, anchor, ms)
  if ms < anchor then
    return nil
  end
  if every == 'day' or every == 'week' then
    local length = every == 'day' and DAY_MS or 7 * DAY_MS
    local start = anchor + floor_div(ms - anchor, length) * length
    return start, start + length
  end
  local step = every == 'year' and 12 or 1
  local ay, am = civil_from_days(floor_div(anchor, DAY_MS))
  local y, m = civil_from_days(floor_div(ms, DAY_MS))
  local k = floor_div((y - ay) * 12 + (m - am), step)
  while k > 0 and add_months(anchor, k * step) > ms do
    k = k - 1
  end
  while add_months(anchor, (k + 1) * step) <= ms do
    k = k + 1
  end
  return add_months(anchor, k * step), add_months(anchor, (k + 1) * step)
end
