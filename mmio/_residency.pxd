cdef object mincore_pages(char* start, size_t length, object filename)
