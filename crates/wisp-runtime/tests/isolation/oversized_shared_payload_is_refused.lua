-- expect: ok
-- timeout: 60
-- host: limits: { max_step: 0 }
-- Finding 8: a payload whose copy would be huge though its table is small (each level refers
-- twice to the level below: 2^40 leaves) is refused with "payload too large", found while
-- copying: within seconds, not after copying terabytes (10 s are allowed for a debug build on a
-- busy machine; the refusal takes time in proportion to the 64 MiB bound). Sending and spawning
-- with it are refused (an error raised, or nil and the error), and the sender keeps working.
-- (The copy runs in Rust, where a step cannot be preempted: on a loaded machine its seconds would
-- otherwise meet the step time limit, which is not what this case is about.)

local h = require("harness") -- common/lib/harness.lua
local HOST = h.HOST
local start_echo, round_trip, problem, verdict = h.start_echo, h.round_trip, h.problem, h.verdict

local function refusal(ok: boolean, a, b): string?
	if not ok then
		return tostring(a)
	elseif a == nil then
		return tostring(b)
	end
	return nil
end

local function case()
	local echo = start_echo()
	local t = { 1 }
	for _ = 1, 40 do
		t = { t, t }
	end
	local attempts = {
		{ "process.send", function()
			return process.send(echo, "x", t)
		end },
		{ "process.send (nested in a table)", function()
			return process.send(echo, "x", { inner = t })
		end },
		{ "process.spawn", function()
			return process.spawn("app:echo", HOST, t)
		end },
	}
	for _, attempt in attempts do
		local started = os.clock()
		local ok, a, b = pcall(attempt[2])
		local took = os.clock() - started
		local why = refusal(ok, a, b)
		if why == nil then
			problem(attempt[1] .. " accepted a payload of 2^40 leaves")
		elseif not string.find(why, "payload too large", 1, true) then
			problem(attempt[1] .. " refused it, but not as too large: " .. why)
		end
		if took > 10 then
			problem(string.format("%s took %.1fs to refuse it", attempt[1], took))
		end
	end
	if not round_trip(echo, 1) then
		problem("the sender could not exchange messages afterwards")
	end
	return verdict()
end

local function main()
	return case()
end

return { main = main }
