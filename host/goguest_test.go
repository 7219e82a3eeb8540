package host

func removeGoGuests() {}
