-- A service that greets, asks a helper process for an answer, prints it and returns.
local function main(name: string?): string
	local greeting = "hello, " .. (name or "nobody")
	print(greeting)
	local square, err = process.exec("app:square", "app:processes", 12)
	if square == nil then
		return nil, err
	end
	print("12 squared is " .. square)
	return greeting
end

return { main = main }
