-- One of several concurrent `with_name` callers: spawns (or finds) the named process, hands it
-- a "hello", and reports the PID it got to `report`.
local function main(name: string, i: number, report: string, callers: number)
	local pid, err = process.with_name(name):with_message("hello", i):spawn("app:named", "app:processes", report, callers)
	process.send(report, "claimed", pid or ("error: " .. tostring(err)))
end
return { main = main }
