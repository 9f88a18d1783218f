-- month_of(seconds): the calendar month "YYYY-MM" (UTC) of a Unix time, from Redis TIME.
-- Budgets are per calendar month; the month is computed inside the scripts so that no
-- gateway clock decides which month a request is charged to. Days to civil date after
-- Howard Hinnant's days_from_civil inverse (proleptic Gregorian calendar).
local function month_of(seconds)
  local z = math.floor(seconds / 86400) + 719468
  local era = math.floor(z / 146097)
  local doe = z - era * 146097
  local yoe = math.floor((doe - math.floor(doe / 1460) + math.floor(doe / 36524)
    - math.floor(doe / 146096)) / 365)
  local doy = doe - (365 * yoe + math.floor(yoe / 4) - math.floor(yoe / 100))
  local mp = math.floor((5 * doy + 2) / 153)
  local month = mp < 10 and mp + 3 or mp - 9
  local year = yoe + era * 400
  if month <= 2 then
    year = year + 1
  end
  return string.format('%04d-%02d', year, month)
end
